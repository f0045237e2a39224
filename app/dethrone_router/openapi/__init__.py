"""The OpenAPI document of the router: the paths in :mod:`.spec`, component schemas in
:mod:`.schemas`."""
