"""The router config: pydantic models (frozen, unknown keys rejected) and the YAML loader.

``load_config(path)`` returns a validated ``RouterConfig`` or raises ``vsr.errors.ConfigError``
whose message names the file, the YAML path of each problem and the values allowed there.
"""

from vsr.config.loader import load_config, parse_config, parse_config_text
from vsr.config.schema import ModelConfig, RouterConfig

__all__ = ["ModelConfig", "RouterConfig", "load_config", "parse_config", "parse_config_text"]
