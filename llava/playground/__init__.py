"""The embedded playground: a tiny random LLaVA-OV checkpoint built offline (`tiny_checkpoint`), its tokenizer
corpus (`corpus`) and the held-out scoring of a model on the playground questions (`evaluate`).

Entry points: ``python -m llava.playground.tiny_checkpoint OUT`` and
``python -m llava.playground.evaluate --model_path DIR [--data playground/data]``.
"""
