"""The fetch pipeline: Export/Engage API → deduplicated DuckDB tables (and the lake).

``service`` drives it; ``windows`` splits a range into day windows, ``staging`` downloads
them to disk, ``ingest`` scans, deduplicates and commits them, ``records`` shapes request
parameters and rows, ``profiles`` fetches Engage pages. A service: may import ``http``,
``storage``, ``results``, ``config`` and ``crashpoints``.
"""
