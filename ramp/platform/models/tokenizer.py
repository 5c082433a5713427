"""Tokenizers: the small one ramp ships (tiny and small presets) and real ones from local folders.

Why ship one: nothing may download at run time, and the tiny/small presets train from scratch, so
they need only a consistent vocabulary, not Gemma's 256k one. The shipped tokenizer is a
byte-level BPE (any text encodes; no unknown tokens) trained offline by ``build_tokenizer`` on a
generated corpus of robot-manipulation instructions and subgoals. Its folder holds ~100 KB.
Special tokens: ``<pad> <eos> <bos> <unk> <image> <sep>`` first, then one ``<act_i>`` per
discrete-action bin at the end (so discrete action tokens decode to something readable).

Regenerate with ``python -m ramp.platform.models.tokenizer`` (deterministic).
Real checkpoints: set ``tokenizer: /path/to/dir`` (e.g. a PaliGemma-2 tokenizer folder); it is
loaded with ``local_files_only=True``.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent / "assets" / "tokenizer"
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>", "<sep>"]
NUM_ACTION_TOKENS = 256
BPE_VOCAB = 2040
BUILTIN = "builtin"

_VERBS = (
    "pick up", "place", "put", "push", "pull", "open", "close", "turn on", "turn off", "slide",
    "press", "lift", "move", "insert", "stack", "unstack", "fold", "unfold", "pour", "grasp",
    "release", "rotate", "twist", "hang", "wipe", "sweep", "drop", "reach", "hammer", "assemble",
    "disassemble", "unplug", "plug", "flip", "shake", "scoop", "fill", "empty", "pack", "unpack",
)  # fmt: skip
_OBJECTS = (
    "the red block", "the blue cube", "the green ball", "the yellow bowl", "the mug", "the cup",
    "the plate", "the drawer", "the door", "the window", "the faucet", "the button", "the lever",
    "the peg", "the nut", "the bolt", "the handle", "the lid", "the box", "the basket",
    "the shirt", "the towel", "the sock", "the pants", "the espresso cup", "the coffee machine",
    "the portafilter", "the tamper", "the milk jug", "the kettle", "the stove knob",
    "the microwave", "the cabinet", "the shelf", "the book", "the bottle", "the can",
    "the wine bottle", "the black bowl", "the ketchup", "the alphabet soup", "the cream cheese",
    "the butter", "the tomato sauce", "the salad dressing", "the orange juice", "the chocolate "
    "pudding", "the moka pot", "the frying pan", "the spatula", "the laundry", "the hanger",
    "the puck", "the soccer ball", "the dial", "the switch", "the light", "the burner",
    "the top drawer", "the bottom drawer", "the left door", "the right door", "the lego brick",
)  # fmt: skip
_PLACES = (
    "on the table", "in the box", "into the basket", "onto the plate", "in the drawer",
    "on the shelf", "into the bin", "on the stove", "in the sink", "to the left",
    "to the right", "behind the mug", "in front of the bowl", "next to the cup",
    "into the goal", "onto the tray", "inside the cabinet", "on top of the box",
    "under the lamp", "into the hole", "to the target", "on the counter", "in the microwave",
)  # fmt: skip
_PREFIX = (
    "", "please ", "now ", "carefully ", "slowly ", "then ", "first ", "next ", "finally ",
)  # fmt: skip
_SUBGOALS = (
    "move the gripper above", "lower the gripper to", "close the gripper on", "open the gripper",
    "lift the object", "align with", "approach", "retreat from", "rotate the wrist toward",
    "hold steady over", "grasp", "release", "done", "subtask complete", "regrasp",
)  # fmt: skip
_METAWORLD = (
    "assembly", "basketball", "bin picking", "box close", "button press topdown",
    "button press topdown wall", "button press", "button press wall", "coffee button",
    "coffee pull", "coffee push", "dial turn", "disassemble", "door close", "door lock",
    "door open", "door unlock", "hand insert", "drawer close", "drawer open", "faucet open",
    "faucet close", "hammer", "handle press side", "handle press", "handle pull side",
    "handle pull", "lever pull", "peg insert side", "pick place wall", "pick out of hole",
    "reach", "push back", "push", "pick place", "plate slide", "plate slide side",
    "plate slide back", "plate slide back side", "peg unplug side", "soccer", "stick push",
    "stick pull", "push wall", "reach wall", "shelf place", "sweep into", "sweep",
    "window open", "window close",
)  # fmt: skip
_WORDS = (
    "robot arm gripper left right up down forward backward a an the of to in on at with and or "
    "it is this that these those one two three four five six seven eight nine ten zero first "
    "second third last object target goal task step subtask success failure episode camera "
    "wrist front top side view state action value progress trajectory point position velocity "
    "joint end effector pose height width depth small large big little near far close open "
    "white black gray grey brown purple pink orange silver metal wooden plastic glass paper "
    "kitchen laundry espresso coffee table floor wall corner edge center middle between"
)


def corpus(n_sentences: int = 20000, seed: int = 0) -> list[str]:
    """Deterministic training text: instructions, subgoals, task names and common words."""
    rng = random.Random(seed)
    out = [" ".join(_WORDS.split())]
    out += [name.replace(" ", "-") for name in _METAWORLD] + list(_METAWORLD)
    for _ in range(n_sentences):
        kind = rng.random()
        if kind < 0.55:
            s = f"{rng.choice(_PREFIX)}{rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
            if rng.random() < 0.7:
                s += f" {rng.choice(_PLACES)}"
            if rng.random() < 0.2:
                s += f" and {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        elif kind < 0.85:
            s = f"{rng.choice(_SUBGOALS)} {rng.choice(_OBJECTS)}"
        elif kind < 0.95:
            s = f"{rng.choice(_METAWORLD)} task"
        else:
            words = _WORDS.split()
            s = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
        if rng.random() < 0.3:
            s = s.capitalize()
        if rng.random() < 0.2:
            s += rng.choice([".", "!", ",", ";", "?"])
        out.append(s)
    return out


def build_tokenizer(out_dir: str | Path = ASSETS) -> Path:
    """Train the shipped byte-level BPE tokenizer and write it (tokenizer.json + config)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<image>", "<sep>"],
    )
    fast.add_tokens([f"<act_{i}>" for i in range(NUM_ACTION_TOKENS)], special_tokens=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return out


@functools.lru_cache(maxsize=8)
def _load(spec: str) -> Any:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if spec == BUILTIN:
        if not (ASSETS / "tokenizer.json").exists():
            raise FileNotFoundError(
                f"the shipped tokenizer is missing from {ASSETS}; reinstall ramp or rebuild it "
                "with `python -m ramp.platform.models.tokenizer`"
            )
        return PreTrainedTokenizerFast.from_pretrained(str(ASSETS), local_files_only=True)
    path = Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(
            f"tokenizer {spec!r} is neither 'builtin' nor a local directory; tokenizers are never "
            "downloaded: save one with tokenizer.save_pretrained(DIR) and point the config at DIR"
        )
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def load_tokenizer(spec: str = BUILTIN) -> Any:
    """'builtin' or a local directory -> a transformers fast tokenizer (cached per spec)."""
    return _load(str(spec))


def special_id(tokenizer: Any, token: str) -> int:
    """The id of a special token, with an error that says which tokenizer lacks it."""
    idx = tokenizer.convert_tokens_to_ids(token)
    unknown = idx is None or (tokenizer.unk_token_id is not None and idx == tokenizer.unk_token_id)
    if unknown and token != tokenizer.unk_token:
        raise KeyError(f"tokenizer {tokenizer.name_or_path!r} has no token {token!r}")
    return int(idx)


def vocab_size(tokenizer: Any, multiple: int = 64) -> int:
    """The embedding rows a model needs for this tokenizer, rounded up to ``multiple``."""
    n = len(tokenizer)
    return -(-n // multiple) * multiple


if __name__ == "__main__":  # pragma: no cover - a maintenance command
    print(f"wrote {build_tokenizer()}")
