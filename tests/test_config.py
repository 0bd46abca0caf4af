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
    assert yaml.safe_load(path.read_text()) == {"name": "n", "steps": 10, "rate": 0.5, "mode": "a", "files": ["a"], "verbose": False}
    assert parse(["--config", str(path)]) == cfg
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]
