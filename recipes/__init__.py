"""The shipped recipe catalog (TOML files and the demo data); a package only so it installs as data."""
