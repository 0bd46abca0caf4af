from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from rephraser.config import build_parser, check_choice, resolve, save_config
from rephraser.errors import ConfigError


@dataclass
class Example:
    name: str = field(metadata={"flags": ("--nm",)})
    steps: int = 10
    rate: float = 0.5
    mode: Literal["a", "b"] = "a"
    files: list[str] = field(default_factory=list)
    verbose: bool = False

    def __post_init__(self):
        check_choice("mode", self.mode, ("a", "b"))


def parse(argv):
    return resolve(Example, build_parser(Example).parse_args(argv))


def test_precedence_defaults_then_yaml_then_flags(tmp_path):
    (tmp_path / "c.yaml").write_text("name: from-yaml\nsteps: 3\nrate: 0.25\nverbose: true\n")
    cfg = parse(["--config", str(tmp_path / "c.yaml"), "--steps", "7", "--files", "x", "y", "--no-verbose"])
    assert cfg == Example(name="from-yaml", steps=7, rate=0.25, mode="a", files=["x", "y"], verbose=False)
    assert parse(["--nm", "n"]) == Example(name="n")


def test_yaml_errors_name_the_file_and_key(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: x\nstepz: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key\(s\) \['stepz'\]"):
        parse(["--config", str(tmp_path / "bad.yaml")])
    (tmp_path / "mode.yaml").write_text("name: x\nmode: c\n")
    with pytest.raises(ConfigError, match="mode: 'c' is not one of"):
        parse(["--config", str(tmp_path / "mode.yaml")])
    with pytest.raises(ConfigError, match=r"missing required field\(s\) \['name'\]: give --name"):
        parse([])


def test_saved_config_round_trips(tmp_path):
    cfg = Example(name="n", files=["a"])
    path = save_config(cfg, tmp_path / "out" / "config.yaml")
    assert yaml.safe_load(path.read_text()) == {
        "name": "n",
        "steps": 10,
        "rate": 0.5,
        "mode": "a",
        "files": ["a"],
        "verbose": False,
    }
    assert parse(["--config", str(path)]) == cfg
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]


@pytest.mark.parametrize(
    "text, error",
    [
        ('name: x\nverbose: "no"\n', "verbose: expected bool, got str 'no' (write true or false, unquoted)"),
        ("name: x\nverbose: 1\n", "verbose: expected bool, got int 1 (write true or false, unquoted)"),
        ('name: x\nsteps: "3"\n', "steps: expected int, got str '3'"),
        ("name: x\nsteps: 2.5\n", "steps: expected int, got float 2.5"),
        ("name: x\nsteps: true\n", "steps: expected int, got bool True"),
        ("name: 3\n", "name: expected str, got int 3"),
        ("name: x\nfiles: [a, 2]\n", "files: expected str, got int 2"),
    ],
)
def test_yaml_values_are_type_checked_like_flags(tmp_path, text, error):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        parse(["--config", str(tmp_path / "c.yaml")])
    assert str(err.value) == f"{tmp_path / 'c.yaml'}: {error}"


def test_yaml_numbers_and_lists_take_the_field_type(tmp_path):
    (tmp_path / "c.yaml").write_text("name: x\nrate: 1\nfiles: one\n")
    cfg = parse(["--config", str(tmp_path / "c.yaml")])
    assert cfg.rate == 1.0 and isinstance(cfg.rate, float) and cfg.files == ["one"]


def test_underscore_and_dash_spellings_and_defaults_in_help(capsys):
    @dataclass
    class Two:
        output_dir: str = field(default="out", metadata={"help": "where"})

    parser = build_parser(Two)
    assert resolve(Two, parser.parse_args(["--output_dir", "a"])).output_dir == "a"
    assert resolve(Two, parser.parse_args(["--output-dir", "b"])).output_dir == "b"
    assert "where (default: 'out')" in " ".join(parser.format_help().split())
