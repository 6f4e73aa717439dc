"""What only a laptop or a test uses: the `make up` supervisor, embedded PostgreSQL, the fake Railway and
the vendor fakes. Never copied into an image and imported by no product package (tests/test_layout.py)."""
