"""Private implementation: infrastructure and services behind the Workspace facade."""
