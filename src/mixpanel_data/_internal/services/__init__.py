"""Services: discovery, fetching and live queries, each built from its collaborators."""
