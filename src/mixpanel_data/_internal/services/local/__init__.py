"""The local report engine: Mixpanel's Query API reports computed from a fetched events table.

``expressions`` compiles Mixpanel's expression language (``where``/``on``) to DuckDB SQL;
``reports`` runs segmentation, numeric, sum/average, event/property counts, funnels
(``funnels`` holds their step matching), retention and frequency in the project timezone
and returns the live reports' result types. A service: may import
``storage``, ``results``, ``config`` and its sibling ``params``.
"""
