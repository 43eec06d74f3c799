"""Alerts: one message per configured target when a run ends, stalls or is lost (issue 18).

`config` reads `$ZERODECK_HOME/config.toml` `[alerts]` and a recipe's override and masks target URLs
for every place they are shown; `message` writes the text; `send` delivers it through Apprise with a
deadline, in a process of its own (`python -m zerodeck.core.alerts.send`) that the supervisor or the
reconciler starts and never waits on, so a hanging target can neither delay nor fail a run.
"""
