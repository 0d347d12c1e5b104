from .decoding import DecodingOptions, beam_search, greedy_search
from .model import ABM, ABMConfig
from .pretrained import load_pretrained
from .recognizer import recognize
