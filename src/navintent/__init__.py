"""navintent: steer and stress-test NoMaD diffusion navigation policies with a two-stage latent intent."""

__version__ = "0.1.0"
