"""First-run discovery, Qt-free: llama-server binaries, GGUF models, a FamilyLog ``.env``."""

from .familylog_env import EnvImportError, FamilyLogEnv, read_familylog_env
from .folders import ModelFolder, default_folders, find_gguf_files
from .gguf_header import GgufHeader, GgufReadError, read_header
from .model_info import ModelInfo, human_params, human_size, read_model_info
from .scan import DiscoveredModel, DiscoveryResult, discover_models, scan_folders, user_folder
from .server import ServerCandidate, candidate_paths, find_servers, probe_server

__all__ = [
    "DiscoveredModel",
    "DiscoveryResult",
    "EnvImportError",
    "FamilyLogEnv",
    "GgufHeader",
    "GgufReadError",
    "ModelFolder",
    "ModelInfo",
    "ServerCandidate",
    "candidate_paths",
    "default_folders",
    "discover_models",
    "find_gguf_files",
    "find_servers",
    "human_params",
    "human_size",
    "probe_server",
    "read_familylog_env",
    "read_header",
    "read_model_info",
    "scan_folders",
    "user_folder",
]
