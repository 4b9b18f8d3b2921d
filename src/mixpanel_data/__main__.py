"""Allow ``python -m mixpanel_data``."""

from mixpanel_data.cli.entry import main

main()
