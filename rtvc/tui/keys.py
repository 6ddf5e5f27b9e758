"""The TUI's keys: one table gives the bindings, the help screen and the command palette."""

from __future__ import annotations

# key, action, what it does
ACTIONS: list[tuple[str, str, str]] = [
    ("v", "toggle('voice')", "Voice changer on/off"),
    ("m", "toggle('mute')", "Mute the output on/off"),
    ("h", "toggle('monitor')", "Hear myself (monitor) on/off"),
    ("g", "toggle('gate')", "Noise gate on/off"),
    ("left_square_bracket", "gate_step(-2)", "Noise gate: threshold 2 dB lower (opens on quieter input)"),
    ("right_square_bracket", "gate_step(2)", "Noise gate: threshold 2 dB higher (keeps more noise out)"),
    ("G", "learn_gate", "Noise gate: listen to the room for 2 s (be quiet) and set the threshold from it"),
    ("t", "toggle_ptt_mode", "Push-to-talk mode on/off"),
    ("space", "talk", "Push-to-talk: start / stop talking"),
    ("slash", "find_voice", "Find a voice (filter the list)"),
    ("s", "save_profile", "Save these settings to a profile"),
    ("d", "devices", "Pick sound devices"),
    ("r", "reconnect", "Reconnect to the daemon now"),
    ("question_mark", "help", "Help: the keys"),
    ("q", "quit", "Quit (the daemon keeps running unless rtvc run started it)"),
]
FOOTER: dict[str, str] = {"s": "save", "d": "devices", "question_mark": "help", "q": "quit"}

# how a key is written for people (help, the command palette): Textual's names for some are words
SHOWN = {"question_mark": "?", "left_square_bracket": "[", "right_square_bracket": "]", "slash": "/"}


def shown(key: str) -> str:
    return SHOWN.get(key, key)
