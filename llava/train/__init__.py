"""SFT and stage-1 training on the transformers Trainer: `python -m llava.train CONFIG.yaml [--field value ...]`."""
