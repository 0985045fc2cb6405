"""The embedded playground: a tiny random LLaVA-OV checkpoint built offline (`tiny_checkpoint`), its tokenizer
corpus (`corpus`), the motion pretraining of its encoder (`pretrain_encoder`, stage 0 of the default run) and the
held-out scoring of a model on the playground questions (`evaluate`).

Entry points: ``python -m llava.playground.tiny_checkpoint OUT``,
``python -m llava.playground.pretrain_encoder --model_path DIR --output_dir OUT [--data playground/data]`` and
``python -m llava.playground.evaluate --model_path DIR [--data playground/data]``.
"""
