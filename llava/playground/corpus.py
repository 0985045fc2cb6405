"""The embedded English text the tiny tokenizer is trained on: the playground's vocabulary (colours, directions,
motion, shapes, captions, questions, yes/no) and the chat template's role words."""

from __future__ import annotations

_WORDS = {
    "colours": "red green blue yellow orange purple pink brown black white gray grey cyan magenta colour color",
    "directions": "left right up down top bottom upward downward leftward rightward toward away center middle corner "
    "edge side clockwise counterclockwise horizontally vertically diagonally",
    "motion": "move moves moving moved motion still static stationary stays stay slides slide bounces rotates "
    "spins falls rises drifts fast slow quickly slowly across from to the frame video clip",
    "shapes": "circle square triangle rectangle star ball box dot disk shape object objects one ones background",
    "answers": "yes no none nothing something anything everything it is not there are none of them",
}
_SENTENCES = (
    "You are a helpful assistant.",
    "system",
    "user",
    "assistant",
    "Which way does the object move?",
    "What colour is the moving one?",
    "What color is the moving object?",
    "Does anything move?",
    "Does anything move in the video?",
    "Is the object moving?",
    "Describe the image.",
    "Describe the video in one sentence.",
    "What shape is the object?",
    "How many objects are there?",
    "Where is the red circle?",
    "The object moves to the left.",
    "The object moves to the right.",
    "The object moves up.",
    "The object moves down.",
    "The red circle moves from left to right.",
    "The blue square moves from the top to the bottom.",
    "A green triangle slides across a white background.",
    "A yellow star stays still in the center of the frame.",
    "Nothing moves; every object is static.",
    "Yes, the orange ball moves upward.",
    "No, nothing moves.",
    "A photo of a purple box on a gray background.",
    "A small black dot in the corner of the image.",
    "Caption: two shapes, one red and one blue.",
    "Answer with a single word.",
    "Answer the question using a single word or phrase.",
    "The moving one is red. The moving one is blue. The moving one is green.",
    "0 1 2 3 4 5 6 7 8 9 10 first second third frame frames image images picture",
    "a an the of in on at and or with without is are was be this that what which where how why who",
)


def tiny_corpus() -> list[str]:
    """The embedded training text of the tiny tokenizer (each line repeated so that common merges form)."""
    lines = [*_SENTENCES, *_WORDS.values()]
    lines += [word.capitalize() for words in _WORDS.values() for word in words.split()]
    return lines * 4
