"""Recipe kinds: one module each (config class, training, loading, adaptation), found
by name through :mod:`mtrl.recipes`."""
