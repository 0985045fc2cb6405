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


# ----------------------------------------------------------------------------------- AI2D, ChartQA, InfoVQA, OCRBench
def build_ai2d(hf_home: Path) -> None:
    # ai2d_doc_to_target: options[int(answer)] as a letter (mcq); gold A, B, A
    features = Features({"question": Value("string"), "options": Sequence(Value("string")), "answer": Value("string"),
                         "image": Image()})  # fmt: skip
    rows = [
        {
            "question": "Which label points at the leaf?",
            "options": ["leaf", "root", "stem", "seed"],
            "answer": gold,
            "image": draw_image(f"diagram {index}"),
        }
        for index, gold in enumerate(["0", "1", "0"])
    ]
    write_hub_dataset(hf_home, "lmms-lab-encoder/ai2d", None, {"test": Dataset.from_list(rows, features=features)})


def build_chartqa(hf_home: Path) -> None:
    # relaxed accuracy: "A" matches "A" exactly, not "7"; the splits by `type`
    features = Features({"type": Value("string"), "question": Value("string"), "answer": Value("string"),
                         "image": Image()})  # fmt: skip
    rows = [{"type": kind, "question": "Which bar is highest?", "answer": gold, "image": draw_image(gold)}
            for kind, gold in [("human_test", "A"), ("human_test", "7"), ("augmented_test", "A")]]  # fmt: skip
    write_hub_dataset(hf_home, "lmms-lab-encoder/ChartQA", None, {"test": Dataset.from_list(rows, features=features)})


def build_infovqa(hf_home: Path) -> None:
    features = Features({"questionId": Value("string"), "question": Value("string"),
                         "answers": Sequence(Value("string")), "image": Image(),
                         "data_split": Value("string")})  # fmt: skip
    rows = [{"questionId": str(index), "question": "Which letter is largest?", "answers": answers,
             "image": draw_image("info"), "data_split": "val"}
            for index, answers in enumerate([["A"], ["x", "y"]])]  # fmt: skip
    write_hub_dataset(hf_home, "lmms-lab-encoder/DocVQA", "InfographicVQA",
                      {"validation": Dataset.from_list(rows, features=features)})  # fmt: skip


def build_ocrbench(hf_home: Path) -> None:
    # Final score / 1000: one point per right answer ("answer in prediction", case-folded)
    features = Features({"dataset": Value("string"), "question": Value("string"), "answer": Sequence(Value("string")),
                         "question_type": Value("string"), "image": Image()})  # fmt: skip
    rows = [{"dataset": "IIIT5K", "question": "what is written in the image?", "answer": answer,
             "question_type": kind, "image": draw_image(answer[0])}
            for answer, kind in [(["a"], "Regular Text Recognition"), (["zz"], "Regular Text Recognition"),
                                 (["A", "B"], "Doc-oriented VQA")]]  # fmt: skip
    write_hub_dataset(hf_home, "echo840/OCRBench", None, {"test": Dataset.from_list(rows, features=features)})


# ------------------------------------------------------------------------------------------------ TemporalBench
def build_temporalbench(hf_home: Path) -> None:
    # doc_to_visual returns the bare path $HF_HOME/temporalbench/<video_name>; the score is a tuple
    # (binary accuracy, multiple-binary accuracy): gold A, A on clip 0 and A, B on clip 1 -> (75, 50).
    rows = [{"idx": index, "video_name": f"clips/clip{index // 2}.mp4", "question": "Is it A or B?", "GT": gold,
             "dataset": "standin", "category": "", "task": "long_qa"}
            for index, gold in enumerate(["A", "A", "A", "B"])]  # fmt: skip
    for clip in range(2):
        write_clip(hf_home / "temporalbench" / "clips" / f"clip{clip}.mp4", seed=10 + clip)
    write_hub_dataset(hf_home, "microsoft/TemporalBench", None, {"test_long_qa": Dataset.from_list(rows)})


# ------------------------------------------------------------------------------- TOMATO, LongVideoBench, NExT-QA
GOLD_INDICES = [0, 1, 0]  # gold option per document: the known-answer model ("A") is right on 2 of 3


def build_tomato(hf_home: Path) -> None:
    # $HF_HOME/TOMATO/<video_path>; answer = option index; score = mean over documents
    rows = [{"id": f"q{index}", "question": "Which way does the square move?", "options": ["right", "left", "up"],
             "answer": gold, "reason_type": "direction", "demonstration_type": "object",
             "video_path": f"videos/object/clip{index}.mp4", "key": f"k{index}"}
            for index, gold in enumerate(GOLD_INDICES)]  # fmt: skip
    for index in range(len(rows)):
        write_clip(hf_home / "TOMATO" / "videos" / "object" / f"clip{index}.mp4", seed=20 + index)
    write_hub_dataset(hf_home, "lmms-eval/TOMATO", None, {"test": Dataset.from_list(rows)})


def build_longvideobench(hf_home: Path) -> None:
    # $HF_HOME/datasets/longvideobench/videos/<video_path>; options option0..option4 ("N/A" when unused)
    rows = [{"id": f"lvb{index}", "video_id": f"v{index}", "video_path": f"v{index}.mp4", "duration": 1.3,
             "duration_group": 15, "question": "Which way does the square move?", "option0": "right",
             "option1": "left", "option2": "up", "option3": "N/A", "option4": "N/A", "correct_choice": gold,
             "question_category": "S2E", "subtitle_path": f"v{index}_en.json", "starting_timestamp_for_subtitles": 0}
            for index, gold in enumerate(GOLD_INDICES)]  # fmt: skip
    for index in range(len(rows)):
        write_clip(hf_home / "datasets" / "longvideobench" / "videos" / f"v{index}.mp4", seed=30 + index)
    write_hub_dataset(hf_home, "longvideobench/LongVideoBench", None, {"validation": Dataset.from_list(rows)})


def build_nextqa(hf_home: Path) -> None:
    # $HF_HOME/nextqa/NExTVideo/<video>.mp4; config MC, answers a0..a4, answer = index; exact_match
    rows = [{"video": f"100{index}", "frame_count": 16, "width": 64, "height": 64, "question": "what happens",
             "answer": gold, "qid": index, "type": "TN", "a0": "moves right", "a1": "moves left", "a2": "stops",
             "a3": "jumps", "a4": "spins"} for index, gold in enumerate(GOLD_INDICES)]  # fmt: skip
    for index in range(len(rows)):
        write_clip(hf_home / "nextqa" / "NExTVideo" / f"100{index}.mp4", seed=40 + index)
    write_hub_dataset(hf_home, "lmms-eval/NExTQA", "MC", {"test": Dataset.from_list(rows)})


# ------------------------------------------------------------------------------------------ PerceptionTest, MLVU
def build_perceptiontest(hf_home: Path) -> None:
    # $HF_HOME/perceptiontest_val/videos/<video_name>.mp4 (sys.exit when missing); config mc_question_val
    rows = [{"video_name": f"video_{index}", "question_id": f"q{index}", "question": "Where does the square go?",
             "options": ["right", "left", "nowhere"], "answer_id": gold, "area": "physics", "reasoning": "descriptive",
             "tag": ["motion"]} for index, gold in enumerate(GOLD_INDICES)]  # fmt: skip
    for index in range(len(rows)):
        write_clip(hf_home / "perceptiontest_val" / "videos" / f"video_{index}.mp4", seed=50 + index)
    write_hub_dataset(
        hf_home, "lmms-eval/PerceptionTest_Val", "mc_question_val", {"validation": Dataset.from_list(rows)}
    )


def build_mlvu(hf_home: Path) -> None:
    # $HF_HOME/mlvu/<video_name>; the score averages 7 task types (absent ones count 0): "count" at 2/3 -> 66.7 / 7
    rows = [{"video_name": f"count/clip{index}.mp4", "duration": 1.3, "question": "How many squares?\n(A) 1\n(B) 2",
             "candidates": ["1", "2"], "answer": "AB"[gold], "task_type": "count", "question_id": f"q{index}"}
            for index, gold in enumerate(GOLD_INDICES)]  # fmt: skip
    for index in range(len(rows)):
        write_clip(hf_home / "mlvu" / "count" / f"clip{index}.mp4", seed=60 + index)
    write_hub_dataset(hf_home, "sy1998/MLVU_dev", None, {"test": Dataset.from_list(rows)})


# -------------------------------------------------------------------------------------------------- Video-MMMU
VIDEO_MMMU_CONFIGS = ("Adaptation", "Comprehension", "Perception")


def build_video_mmmu(hf_home: Path) -> None:
    # id "test_<Subject>_<n>" -> $HF_HOME/video_mmmu/<discipline>/<id>.mp4; per config gold A, B -> acc 0.5
    for number, config in enumerate(VIDEO_MMMU_CONFIGS):
        rows = [{"id": f"test_Math_{10 * number + index}", "question": "Which curve?", "options": ["sine", "line"],
                 "answer": gold, "question_type": "multiple-choice", "link_selected": "", "image": None}
                for index, gold in enumerate(["A", "B"])]  # fmt: skip
        for row in rows:
            write_clip(hf_home / "video_mmmu" / "Science" / f"{row['id']}.mp4", seed=len(row["id"]))
        write_hub_dataset(hf_home, "lmms-eval/VideoMMMU", config, {"test": Dataset.from_list(rows)})


# ------------------------------------------------------------------------------------------------ EgoSchema, MMVU
def build_egoschema(hf_home: Path) -> None:
    # $HF_HOME/egoschema/videos/<video_idx>.mp4; config Subset (the full test set is scored by an external server)
    rows = [{"question_idx": str(index), "question": "What does the camera wearer do?", "video_idx": f"ego{index}",
             "option": ["A. walks", "B. sits", "C. runs", "D. cooks", "E. reads"], "answer": str(gold)}
            for index, gold in enumerate(GOLD_INDICES)]  # fmt: skip
    for index in range(len(rows)):
        write_clip(hf_home / "egoschema" / "videos" / f"ego{index}.mp4", seed=70 + index)
    write_hub_dataset(hf_home, "lmms-eval/egoschema", "Subset", {"test": Dataset.from_list(rows)})


def build_mmvu(hf_home: Path) -> None:
    # $HF_HOME/mmvu/<video_path>, category = its folder; multiple-choice questions are scored by rule (no judge)
    choices = {"A": "one", "B": "two", "C": "three", "D": "four", "E": "five"}
    rows = [{"id": f"mmvu{index}", "video_path": f"videos/Biology/clip{index}.mp4", "question": "How many cells?",
             "choices": choices, "answer": "AB"[gold], "question_type": "multiple-choice"}
            for index, gold in enumerate(GOLD_INDICES)]  # fmt: skip
    for index in range(len(rows)):
        write_clip(hf_home / "mmvu" / "videos" / "Biology" / f"clip{index}.mp4", seed=80 + index)
    write_hub_dataset(hf_home, "lmms-eval/MMVU", None, {"validation": Dataset.from_list(rows)})


# ------------------------------------------------------------------------------------------------------ registry
STANDINS: dict[str, StandIn] = {
    "videomme": StandIn(
        task="videomme",
        build=build_videomme,
        expected={"videomme": {"videomme_perception_score": 100.0 * VIDEOMME_ANSWERS.count("A") / 4}},
    ),
    "mvbench": StandIn(task="mvbench", build=build_mvbench, expected=mvbench_expected()),
    "docvqa_val": StandIn(task="docvqa_val", build=build_docvqa, expected={"docvqa_val": {"anls": 2 / 3}}),
    "ai2d": StandIn(task="ai2d", build=build_ai2d, expected={"ai2d": {"exact_match,flexible-extract": 2 / 3}}),
    "chartqa": StandIn(
        task="chartqa",
        build=build_chartqa,
        expected={"chartqa": {"relaxed_overall": 2 / 3, "relaxed_human_split": 1 / 2, "relaxed_augmented_split": 1.0}},
    ),  # fmt: skip
    "infovqa_val": StandIn(task="infovqa_val", build=build_infovqa, expected={"infovqa_val": {"anls": 0.5}}),
    "temporalbench_long_qa": StandIn(
        task="temporalbench_long_qa",
        build=build_temporalbench,
        expected={"temporalbench_long_qa": {"temporalbench_score": [75.0, 50.0]}},
    ),
    "tomato": StandIn(task="tomato", build=build_tomato, expected={"tomato": {"tomato_score": 2 / 3}}),
    "longvideobench_val_v": StandIn(
        task="longvideobench_val_v",
        build=build_longvideobench,
        expected={"longvideobench_val_v": {"lvb_acc": 0.66667}},
    ),
    "nextqa_mc_test": StandIn(
        task="nextqa_mc_test", build=build_nextqa, expected={"nextqa_mc_test": {"exact_match": 2 / 3}}
    ),
    "perceptiontest_val_mc": StandIn(
        task="perceptiontest_val_mc",
        build=build_perceptiontest,
        expected={"perceptiontest_val_mc": {"accuracy": 2 / 3}},
    ),
    "mlvu_dev": StandIn(
        task="mlvu_dev", build=build_mlvu, expected={"mlvu_dev": {"mlvu_percetion_score": 200 / 3 / 7}}
    ),
    "video_mmmu": StandIn(
        task="video_mmmu",
        build=build_video_mmmu,
        expected={f"video_mmmu_{c.lower()}": {"mmmu_acc": 0.5} for c in VIDEO_MMMU_CONFIGS},
    ),
    "egoschema_subset": StandIn(
        task="egoschema_subset", build=build_egoschema, expected={"egoschema_subset": {"score": 2 / 3}}
    ),
    "mmvu_val": StandIn(task="mmvu_val", build=build_mmvu, expected={"mmvu_val": {"accuracy": 200 / 3}}),
    "ocrbench": StandIn(task="ocrbench", build=build_ocrbench, expected={"ocrbench": {"ocrbench_accuracy": 0.002}}),
}
