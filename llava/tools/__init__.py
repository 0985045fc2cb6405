"""Small command-line tools over the library (each a `python -m llava.tools.<name>` entry point)."""
