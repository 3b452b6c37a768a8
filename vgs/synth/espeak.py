"""Minimal ctypes binding to libespeak-ng (synchronous mode): audio samples plus timed events.

Determinism: espeak-ng's wave generator keeps state across utterances in C statics (glottal
phase, pitch-flutter and cycle counters) and draws breath/frication noise from libc rand(), so
the same text spoken twice in one process differs in samples and by ~0.5 ms in event times,
depending on what was spoken before.  There is no API to reset that state.  `session()` therefore
maps a fresh copy of the library (dlopen), initialises it, seeds rand(), and unmaps it afterwards
(espeak_Terminate + dlclose): every utterance is then a pure function of (text, voice, rate,
pitch), in any process, in any order.  Measured cost ~3-4 ms per utterance on our machines
(espeak itself ~1 ms per second of speech).  Sessions share no state, so the module is safe under
multiprocessing 'fork' and 'spawn'; a lock serialises threads of one process.
"""
import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading

import numpy as np

# espeak_EVENT_TYPE (speak_lib.h)
EV_LIST_TERMINATED, EV_WORD, EV_SENTENCE, EV_MARK, EV_PLAY, EV_END, EV_MSG_TERMINATED, \
    EV_PHONEME, EV_SAMPLERATE = range(9)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
CHARS_UTF8 = 1
SSML = 0x10
# espeak_PARAMETER
_RATE, _VOLUME, _PITCH = 1, 2, 3
RAND_SEED = 1


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms, rounded: we use `sample` instead
        ("sample", ctypes.c_int),          # sample index from the start of the message
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class VoiceInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte),
                ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int),
                ("spare", ctypes.c_void_p)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))
# In the conda env (envs/vgs.yaml) its own copy: the system loader does not search $CONDA_PREFIX/lib.
_CONDA_LIB = os.path.join(sys.prefix, "lib", "libespeak-ng.so.1")
_LIB_PATH = (_CONDA_LIB if os.path.exists(_CONDA_LIB)
             else ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1")
_LOCK = threading.Lock()
_libc = ctypes.CDLL(None)


class Session:
    """One freshly loaded, initialised espeak-ng instance (see module docstring)."""

    def __init__(self, lib):
        self.lib = lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                              ctypes.c_int]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(VoiceInfo))
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 1000, None,
                                                 _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate})")
        self._chunks, self._events = [], []
        self._cb = _CALLBACK(self._collect)  # keep a reference: C holds only the pointer
        lib.espeak_SetSynthCallback(self._cb)

    def _collect(self, wav, n, events):
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != EV_LIST_TERMINATED:
            e = events[i]
            if e.type == EV_MARK:
                name = e.id.name.decode()
            elif e.type == EV_PHONEME:
                name = e.id.string.decode(errors="replace")
            else:
                name = e.id.number
            self._events.append((e.type, e.sample, name))
            i += 1
        return 0  # continue synthesis

    def set_voice(self, name):
        if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {name!r} (see `espeak-ng --voices=en`)")

    def synth(self, text, voice, rate, pitch, flags=CHARS_UTF8):
        """Speak `text`; return (int16 samples at self.sample_rate, [(type, sample, id)])."""
        self.set_voice(voice)
        for param, value in ((_RATE, rate), (_PITCH, pitch)):
            if self.lib.espeak_SetParameter(param, int(value), 0) != 0:
                raise ValueError(f"espeak_SetParameter({param}, {value}) failed")
        self._chunks, self._events = [], []
        _libc.srand(RAND_SEED)  # breath and frication noise
        data = text.encode() + b"\0"
        err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed ({err}) for {text!r}")
        wav = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return wav, self._events

    def text_to_phonemes(self, text):
        """Phoneme names for `text` in the current voice, space separated, with stress marks."""
        ptr = ctypes.c_char_p(text.encode())
        keep = ptr.value  # the C side advances `ptr` through this buffer, clause by clause
        out = []
        while ptr.value:
            out.append(self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), CHARS_UTF8,
                                                      ord(" ") << 8).decode())
        del keep
        return " ".join(out)

    def list_voices(self):
        """[(identifier, first language)] of all installed voices."""
        voices = self.lib.espeak_ListVoices(None)
        out, i = [], 0
        while voices[i]:
            v = voices[i].contents
            langs = v.languages or b"\0"  # <priority byte><language>\0 ...
            out.append((v.identifier.decode(), langs[1:].decode(errors="replace")))
            i += 1
        return out


@contextlib.contextmanager
def session():
    """A fresh espeak-ng instance, unloaded on exit (see module docstring)."""
    import _ctypes

    with _LOCK:
        try:
            lib = ctypes.CDLL(_LIB_PATH)
        except OSError as e:
            raise RuntimeError(f"cannot load libespeak-ng ({_LIB_PATH}): install the Debian "
                               f"package espeak-ng") from e
        try:
            yield Session(lib)
        finally:
            lib.espeak_Terminate()
            _ctypes.dlclose(lib._handle)
