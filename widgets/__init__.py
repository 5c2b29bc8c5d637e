"""worldengine_lab.widgets: thin notebook views over library objects (installed from the top-level widgets/ folder).

The library never imports this package.
"""

__all__: list[str] = []
