"""The local Mixpanel API emulator (`mp emulator serve`)."""
