"""The MSI setup stubs: plan (what to do), names (identifiers), views (what templates print)."""
