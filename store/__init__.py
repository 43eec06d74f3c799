"""zerodeck's database: SQLModel tables (`models`), the one engine factory (`engine`), migrations
and queries. Import the submodules; this package stays empty so `zerodeck.store.location` costs
nothing at CLI start-up (SQLAlchemy alone takes ~0.2 s to import).
"""
