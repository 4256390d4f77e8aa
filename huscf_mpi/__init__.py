"""huscf-mpi: HuSCF-GAN (Tawfilis et al., arXiv 2507.12979) trained over MPI.

Rank 0 is the server, ranks 1..N are clients; smashed data and its gradients travel
point-to-point over MPI. See SPEC sections cited in each module's docstring.
"""
__version__ = "0.1.0"
