"""Split conditional-GAN models: architectures, cut vectors, head/body/tail builders (SPEC §2)."""
from .architecture import (ARCHITECTURES, DISCRIMINATOR, FAMILIES, GENERATOR, NETS, Architecture, domain_architecture,
                           get_architecture)
from .cuts import CutVector, NetCut, uniform_max, uniform_min, valid_cut_vectors, valid_net_cuts
from .split import (ClientModels, Segment, ServerBody, block_state, client_models, full_blocks,
                    load_block_state, server_bodies)

__all__ = [
    "ARCHITECTURES", "FAMILIES", "Architecture", "get_architecture", "domain_architecture", "GENERATOR", "DISCRIMINATOR", "NETS",
    "CutVector", "NetCut", "valid_net_cuts", "valid_cut_vectors", "uniform_min", "uniform_max",
    "Segment", "ServerBody", "ClientModels", "full_blocks", "client_models", "server_bodies",
    "block_state", "load_block_state",
]
