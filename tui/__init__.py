"""The Textual front end: thin screens over zerodeck.core and zerodeck.store."""
