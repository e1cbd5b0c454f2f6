"""Example third-party vaebench variant; see my_vae.py."""
