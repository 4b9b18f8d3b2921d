"""Allow ``python -m mixpanel_data``."""

from mixpanel_data.cli.main import main

main()
