"""pytest plugin of the Coze Plus conformance suite (being built)."""
