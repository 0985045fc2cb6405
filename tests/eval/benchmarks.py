"""Stand-ins of the 16 benchmarks (llava/eval/README.md) in their Hub schema as lmms-eval 0.7.3's task code reads
them (field names and media layout taken from the installed task YAML and utils.py). See standins.py."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, Features, Image, Sequence, Value

from .standins import StandIn, draw_image, write_clip, write_hub_dataset

# --------------------------------------------------------------------------------------------------- Video-MME
VIDEOMME_ANSWERS = ["A", "B", "A", "C"]


def build_videomme(hf_home: Path) -> None:
    # utils.videomme_doc_to_visual: $HF_HOME/<cache_dir: videomme>/data/<videoID>.mp4 (sys.exit when missing)
    rows = []
    for index, answer in enumerate(VIDEOMME_ANSWERS):
        video_id = f"vid{index // 2:03d}"
        rows.append({"video_id": f"{index // 2:03d}", "duration": "short", "domain": "Knowledge",
                     "sub_category": "Humanity & History", "url": "", "videoID": video_id,
                     "question_id": f"{index // 2:03d}-{index % 2 + 1}", "task_type": "Counting Problem",
                     "question": "How many squares move?",
                     "options": ["A. one", "B. two", "C. three", "D. four"], "answer": answer})  # fmt: skip
    for video_id in sorted({row["videoID"] for row in rows}):
        write_clip(hf_home / "videomme" / "data" / f"{video_id}.mp4", seed=len(video_id) + int(video_id[3:]))
    write_hub_dataset(hf_home, "lmms-eval/Video-MME", None, {"test": Dataset.from_list(rows)})


# ------------------------------------------------------------------------------------------------------ MVBench
MVBENCH_FOLDERS = {  # lmms-eval's mvbench/utils.py DATA_LIST: subtask -> folder under $HF_HOME/mvbench_video
    "object_interaction": "star/Charades_segment", "action_sequence": "star/Charades_segment",
    "action_prediction": "star/Charades_segment", "action_localization": "sta/sta_video_segment",
    "moving_count": "clevrer/video_validation", "fine_grained_pose": "nturgbd_convert",
    "character_order": "perception/videos", "object_shuffle": "perception/videos",
    "egocentric_navigation": "vlnqa", "moving_direction": "clevrer/video_validation",
    "episodic_reasoning": "tvqa/video_fps3_hq_segment", "fine_grained_action": "Moments_in_Time_Raw/videos",
    "scene_transition": "scene_qa/video", "state_change": "perception/videos",
    "moving_attribute": "clevrer/video_validation", "action_antonym": "ssv2_video_mp4",
    "unexpected_action": "FunQA_test/test", "counterfactual_inference": "clevrer/video_validation",
    "object_existence": "clevrer/video_validation", "action_count": "perception/videos",
}  # fmt: skip


def build_mvbench(hf_home: Path) -> None:
    # One document per subtask (dataset_name = subtask, split "train"); the gold answer is the first candidate in
    # the even subtasks (the known-answer model scores 100) and the second in the odd ones (0).
    for number, (subtask, folder) in enumerate(sorted(MVBENCH_FOLDERS.items())):
        candidates = ["left", "right", "up"]
        video = f"{subtask}_0.mp4"
        write_clip(hf_home / "mvbench_video" / folder / video, seed=number)
        row = {"video": video, "question": "Where does the square move?", "candidates": candidates,
               "answer": candidates[number % 2], "accurate_start": None, "accurate_end": None}  # fmt: skip
        write_hub_dataset(hf_home, "OpenGVLab/MVBench", subtask, {"train": Dataset.from_list([row])})


def mvbench_expected() -> dict[str, dict[str, float]]:
    return {f"mvbench_{subtask}": {"mvbench_accuracy": 100.0 if number % 2 == 0 else 0.0}
            for number, subtask in enumerate(sorted(MVBENCH_FOLDERS))}  # fmt: skip


# ------------------------------------------------------------------------------------------------------ DocVQA
DOC_FEATURES = Features({
    "questionId": Value("string"), "question": Value("string"), "question_types": Sequence(Value("string")),
    "image": Image(), "docId": Value("int64"), "ucsf_document_id": Value("string"),
    "ucsf_document_page_no": Value("string"), "answers": Sequence(Value("string")), "data_split": Value("string"),
})  # fmt: skip
DOCVQA_ANSWERS = [["A"], ["B", "b"], ["A", "a"]]  # ANLS of the answer "A": 1, 0, 1


def build_docvqa(hf_home: Path) -> None:
    rows = [{"questionId": str(index), "question": "Which letter is printed?", "question_types": ["handwritten"],
             "image": draw_image(f"letter {answers[0]}"), "docId": index, "ucsf_document_id": f"d{index}",
             "ucsf_document_page_no": "1", "answers": answers, "data_split": "val"}
            for index, answers in enumerate(DOCVQA_ANSWERS)]  # fmt: skip
    write_hub_dataset(hf_home, "lmms-lab-encoder/DocVQA", "DocVQA",
                      {"validation": Dataset.from_list(rows, features=DOC_FEATURES)})  # fmt: skip


# ------------------------------------------------------------------------------------------------------ registry
STANDINS: dict[str, StandIn] = {
    "videomme": StandIn(
        task="videomme",
        build=build_videomme,
        expected={"videomme": {"videomme_perception_score": 100.0 * VIDEOMME_ANSWERS.count("A") / 4}},
    ),
    "mvbench": StandIn(task="mvbench", build=build_mvbench, expected=mvbench_expected()),
    "docvqa_val": StandIn(task="docvqa_val", build=build_docvqa, expected={"docvqa_val": {"anls": 2 / 3}}),
}
