"""Task functions of the playground tasks (lmms-eval loads this file next to the YAMLs; the logic lives in
`llava.eval.playground_tasks`)."""

from llava.eval.playground_tasks import (  # noqa: F401 (re-exported for `!function utils.<name>`)
    doc_to_choice,
    doc_to_choice_target,
    doc_to_target,
    doc_to_text,
    doc_to_visual,
    process_docs,
    process_results,
)
