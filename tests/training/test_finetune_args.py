"""``vsr train tasks``'s command line: every optional data group is a flag, and a run's report
records every one of them as used (the seventh to ninth rounds' reports lacked --with-planted)."""

from __future__ import annotations

import pytest

from vsr.training.finetune_args import DATA_FLAGS, data_flags, parser


def parse(*argv: str):
    return parser().parse_args(["--out", "o", "--encoder-dir", "e", *argv])


def test_defaults_are_the_shipped_recipe() -> None:
    flags = data_flags(parse())
    assert flags == {
        "with_packages": True,
        "with_more_packages": True,
        "more_domain": False,
        "with_system_prompts": True,
        "with_third_survey": True,
        "with_more_sharegpt": True,
        "with_fourth_survey": True,
        "with_planted": False,
        "with_requests_more": False,
        "with_fifth_survey": False,
        "with_domain_survey2": False,
    }


def test_every_flag_turns_on_and_off_and_is_recorded() -> None:
    for data in DATA_FLAGS:
        on = data_flags(parse(data.flag, "--with-more-packages"))
        off = data_flags(parse("--no-" + data.flag.removeprefix("--")))
        assert on[data.dest] is True, data.flag
        assert off[data.dest] is False, data.flag


def test_more_domain_counts_only_with_the_second_survey() -> None:
    assert data_flags(parse("--more-domain"))["more_domain"] is True
    assert data_flags(parse("--more-domain", "--no-with-more-packages"))["more_domain"] is False


def test_help_names_each_group_files() -> None:
    helps = {a.dest: a.help or "" for a in parser()._actions}
    for data in DATA_FLAGS:
        for file in data.files:
            assert f"data/{file}" in helps[data.dest], data.flag


def test_vsr_train_tasks_passes_the_trainers_options_through(monkeypatch) -> None:
    """The card's commands (``vsr train tasks --soup DIR ... --with-planted``) reach the trainer's
    parser; other commands still refuse options they do not define."""
    import vsr.training
    from vsr import cli
    from vsr.training import finetune

    seen: list[list[str]] = []
    monkeypatch.setattr(vsr.training, "missing_for", lambda task: [])
    monkeypatch.setattr(finetune, "main", lambda argv: seen.append(list(argv)) or 0)
    argv = ["train", "tasks", "--out", "o", "--encoder-dir", "e", "--with-planted", "--soup", "a"]
    assert cli.main([*argv, "--soup", "b"]) == 0
    forwarded = seen[0]
    assert forwarded[-5:] == ["--with-planted", "--soup", "a", "--soup", "b"]
    parsed = parser().parse_args(forwarded)
    assert parsed.with_planted and [str(p) for p in parsed.soup] == ["a", "b"]
    with pytest.raises(SystemExit):
        cli.main(["train", "domain", "--out", "o", "--with-planted"])
