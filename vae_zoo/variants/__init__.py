"""Built-in variants, one per file; each subclasses ``vae_zoo.VAE`` directly.

Imported lazily by the model registry, never by star-import.
"""
