"""Synthetic multi-speaker conversations with exact references, from TTS engines.

No annotated corpus reaches the machines skseg is developed on, yet fine-tuning and
tuning need data whose reference is *right*. This module makes it: conversations
between synthetic speakers voiced by `espeak-ng <https://github.com/espeak-ng/espeak-ng>`_
(its library and data from the ``espeakng-loader`` wheel: ``pip install
"skseg[synthetic]"``, nothing from the system), with turn taking, back-channels,
overlaps at a controlled ratio, level changes, noise at several SNRs and telephone
band limits, 16 kHz mono. `Flite <http://cmuflite.org>`_ voices can be added where
its command is installed (``apt-get install flite``; no package index carries it):
it is used only when asked for, with ``engines=("espeak-ng", "flite")``.

The reference is exact because every utterance is synthesized alone: its speech
is where its clean waveform exceeds a threshold set on that utterance (40 dB
below its peak by default), to the sample; silences inside an utterance or between
two utterances of the same speaker that last ``min_pause`` (0.3 s) or longer are
left out of the reference, shorter ones are bridged, as human annotators do.
Noise and band limits are applied to the mixture afterwards and never move the
reference.

A speaker is a :class:`Persona`: an engine, a voice of that engine, a language,
a pitch and a speed. :func:`split_personas` partitions the *voices* between
train, validation and test before drawing personas from them, so no speaker and
no voice of the test set is heard in training. :func:`make_corpus` writes the
three splits as folders that :func:`skseg.io.load_folder` and ``skseg tune`` read
(``uri.wav`` + ``uri.rttm`` + ``uri.uem``), plus a ``manifest.json``.

The same seed gives the same bytes on the same machine (same engine versions,
NumPy and SciPy); every file draws from its own seed, so a file does not change
when more files are asked for.

From the shell::

    python -m skseg.synthetic data/ --train 40 --val 10 --test 20 --duration 60
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from numbers import Real
from pathlib import Path

import numpy as np
import soundfile as sf
from pyannote.core import Annotation, Segment, Timeline
from scipy import signal

from .exceptions import SksegError
from .io import write_rttm, write_uem

__all__ = [
    "DEFAULT_ENGINES",
    "ENGINES",
    "EspeakLibrary",
    "espeak_library",
    "EngineUnavailableError",
    "Persona",
    "list_voices",
    "split_personas",
    "generate_conversation",
    "write_conversations",
    "make_corpus",
]

#: sample rate of everything this module produces
SAMPLE_RATE = 16000
#: the engines this module drives, with how to install each: espeak-ng comes from
#: the package index (its library and data ship in the ``espeakng-loader`` wheel, the
#: ``skseg[synthetic]`` extra); Flite, which no package index carries, is optional
#: and used only where asked for and its command is installed
ENGINES = {
    "espeak-ng": 'pip install "skseg[synthetic]"',
    "flite": "apt-get install flite",
}
#: the engines used when none are named: those a ``pip install`` brings, so that a
#: corpus, and the tests and docs that generate one, need nothing from the system
DEFAULT_ENGINES = ("espeak-ng",)

_SPLITS = ("train", "val", "test")

# espeak-ng variants (voice timbres) that sound like a person talking; robotic,
# whispered and novelty variants are left out (whispered speech has no voicing
# and "croak"/"Demonic" are effects, not speakers). Only those installed are used.
_ESPEAK_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
    "f1", "f2", "f3", "f4", "f5",
    "Alex", "Andy", "Annie", "Denis", "Gene", "Hugo", "Jacky", "Lee", "Marco",
    "Mario", "Michael", "Mike", "Nguyen", "Storm", "adam", "anika", "aunty",
    "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "grandma",
    "grandpa", "gustave", "iven", "john", "klatt", "klatt2", "klatt3", "linda",
    "max", "michel", "miguel", "norbert", "paul", "pedro", "quincy", "rob",
    "robert", "sandro", "shelby", "steph", "travis", "victor", "zac",
)  # fmt: skip
# Flite's 16 kHz voices and their natural mean F0 (Hz, measured), which a persona's
# pitch factor scales; "rms" ignores the F0 target, so its personas keep factor 1.
_FLITE_VOICES = {"awb": 116.0, "kal16": 96.0, "rms": 99.0, "slt": 167.0}
_FLITE_FIXED_PITCH = {"rms"}

# espeak-ng languages: English accents most of the time, a few other languages
# (each reads its own sentences) for variety of phonetics and prosody.
_ENGLISH = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029")
_OTHER_LANGUAGES = ("fr-fr", "de", "es", "it", "nl", "pt")

_THRESHOLD_DB = 40.0


class EngineUnavailableError(SksegError, RuntimeError):
    """A text-to-speech engine that the generator needs is not installed.

    Parameters
    ----------
    engine : str
        The engine's name (``"espeak-ng"`` or ``"flite"``).

    Examples
    --------
    >>> print(EngineUnavailableError("flite"))
    the 'flite' text-to-speech engine is not installed (no 'flite' command on PATH); \
install it with: apt-get install flite
    >>> print(EngineUnavailableError("espeak-ng"))
    the 'espeak-ng' text-to-speech engine is not installed (no espeakng_loader \
package); install it with: pip install "skseg[synthetic]"
    """

    def __init__(self, engine: str):
        where = (
            "no espeakng_loader package"
            if engine == "espeak-ng"
            else f"no {engine!r} command on PATH"
        )
        super().__init__(
            f"the {engine!r} text-to-speech engine is not installed ({where}); "
            f"install it with: {ENGINES.get(engine, engine)}"
        )
        self.engine = engine

    def __reduce__(self):
        return type(self), (self.engine,)


# The program that speaks one text through libespeak-ng's C API (speak_lib.h), run
# in a fresh interpreter per text, as the espeak-ng command is: the library keeps
# state from one text to the next (its random generator, the voice's flutter), so a
# text would otherwise sound different depending on what the process spoke before,
# and a file would change when more files are asked for. Only ctypes is imported
# (-I -S: no site, no user path), so a text costs a few milliseconds of start-up.
# argv: library, data folder, voice ("en-gb+m3" or "info"), pitch, rate; the text
# on stdin; stdout: the sample rate (4 bytes) then int16 samples.
_SPEAKER = r"""
import ctypes, sys
library, data, voice, pitch, rate = sys.argv[1:6]
lib = ctypes.CDLL(library)
lib.espeak_Initialize.argtypes = [
    ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int
]
# AUDIO_OUTPUT_SYNCHRONOUS, espeakINITIALIZE_DONT_EXIT
sample_rate = lib.espeak_Initialize(2, 0, data.encode(), 0x8000)
if sample_rate <= 0:
    sys.exit("cannot initialize with the data in " + data)
if voice == "info":
    path = ctypes.c_char_p()
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    version = lib.espeak_Info(ctypes.byref(path))
    sys.stdout.buffer.write(version + b"\n" + (path.value or b""))
    sys.exit(0)
class Voice(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte),
                ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int),
                ("spare", ctypes.c_void_p)]
lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(Voice)]
# as the espeak-ng command's -v: a voice's name, else a language and a variant
if lib.espeak_SetVoiceByName(voice.encode()) != 0:
    if lib.espeak_SetVoiceByProperties(ctypes.byref(Voice(languages=voice.encode()))):
        sys.exit("no voice " + repr(voice))
# 1.52 seeds its random generator (intonation, flutter) from the clock: fixed here
# so that a text gives the same samples every time
if hasattr(lib, "espeak_ng_SetRandSeed"):
    lib.espeak_ng_SetRandSeed(ctypes.c_long(0))
lib.espeak_SetParameter(1, int(rate), 0)  # espeakRATE
lib.espeak_SetParameter(3, int(pitch), 0)  # espeakPITCH
chunks = []
def collect(wav, n_samples, events):
    if n_samples > 0:
        chunks.append(ctypes.string_at(wav, 2 * n_samples))
    return 0
Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)
callback = Callback(collect)
lib.espeak_SetSynthCallback(callback)
text = sys.stdin.buffer.read()
lib.espeak_Synth.argtypes = [
    ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
    ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
]
# POS_CHARACTER; the command's flags: espeakCHARS_AUTO | espeakPHONEMES |
# espeakENDPAUSE
status = lib.espeak_Synth(text, len(text) + 1, 0, 1, 0, 0x1100, None, None)
if status != 0:
    sys.exit("espeak_Synth failed with status " + str(status))
sys.stdout.buffer.write(sample_rate.to_bytes(4, "little") + b"".join(chunks))
"""


class EspeakLibrary:
    """libespeak-ng and its voice data from the ``espeakng-loader`` wheel.

    The library is loaded by its absolute path inside the wheel, with the wheel's
    data folder, so an espeak-ng installed on the system (``/usr/lib``) is never
    the one that speaks: the same wheel gives the same samples on every machine.
    Each text is spoken by a fresh interpreter driving the library's C API through
    ctypes, as the espeak-ng command would (see :meth:`synthesize`). Use
    :func:`espeak_library`, which finds it once per process.

    Raises
    ------
    EngineUnavailableError
        If ``espeakng-loader`` is not installed.

    Examples
    --------
    >>> library = espeak_library()
    >>> samples, sample_rate = library.synthesize("en-gb+f2", 50, 175, "Hello.")
    >>> samples.dtype, sample_rate
    (dtype('int16'), 22050)
    >>> {"m3", "f2", "klatt"} <= library.variants()
    True
    """

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError:
            raise EngineUnavailableError("espeak-ng") from None
        self.library_path = os.path.realpath(espeakng_loader.get_library_path())
        self.data_path = os.path.realpath(espeakng_loader.get_data_path())

    def _run(self, voice: str, pitch: int, rate: int, text: bytes) -> bytes:
        command = [
            sys.executable, "-I", "-S", "-c", _SPEAKER,
            self.library_path, self.data_path, voice, str(pitch), str(rate),
        ]  # fmt: skip
        out = subprocess.run(command, input=text, capture_output=True)
        if out.returncode != 0:
            message = out.stderr.decode(errors="replace").strip().splitlines()
            raise SksegError(
                f"espeak-ng ({self.library_path}) failed on {text.decode()!r} with "
                f"voice {voice!r}: {message[-1] if message else out.returncode}"
            )
        return out.stdout

    @functools.cached_property
    def info(self) -> tuple[str, str]:
        """The library's version and the data folder it loaded.

        Returns
        -------
        info : tuple of str
        """
        version, data = self._run("info", 50, 175, b"").decode().split("\n", 1)
        return version, os.path.realpath(data)

    def variants(self) -> set[str]:
        """Names of the voice variants (timbres) in the library's data.

        Returns
        -------
        variants : set of str
        """
        folder = Path(self.data_path) / "voices" / "!v"
        return {path.name for path in folder.iterdir() if path.is_file()}

    def synthesize(
        self, voice: str, pitch: int, rate: int, text: str
    ) -> tuple[np.ndarray, int]:
        """Speak ``text``: int16 samples and their sample rate.

        Parameters
        ----------
        voice : str
            ``"language+variant"``, as the espeak-ng command's ``-v``.
        pitch : int
            0-99, 50 is the voice's own (``-p``).
        rate : int
            Words per minute (``-s``).
        text : str

        Returns
        -------
        samples : ndarray of int16
        sample_rate : int

        Raises
        ------
        SksegError
            If the voice is unknown or the library fails.
        """
        data = self._run(voice, int(pitch), int(rate), text.encode())
        sample_rate = int.from_bytes(data[:4], "little")
        return np.frombuffer(data[4:], dtype="<i2"), sample_rate


@functools.cache
def espeak_library() -> EspeakLibrary:
    """Return the process's :class:`EspeakLibrary`, found on first use.

    Returns
    -------
    library : EspeakLibrary

    Raises
    ------
    EngineUnavailableError
        If ``espeakng-loader`` is not installed (``pip install "skseg[synthetic]"``).

    Examples
    --------
    >>> library = espeak_library()
    >>> Path(library.library_path).parent.name
    'espeakng_loader'
    >>> version, data = library.info
    >>> data == library.data_path
    True
    """
    return EspeakLibrary()


def _require(engine: str) -> str | None:
    """Check that ``engine`` is known and installed; the command's path for Flite."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; expected one of {list(ENGINES)}")
    if engine == "espeak-ng":
        espeak_library()
        return None
    path = shutil.which(engine)
    if path is None:
        raise EngineUnavailableError(engine)
    return path


def _engines(engines: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(engines, str):
        engines = (engines,)
    engines = tuple(engines)
    if not engines:
        raise ValueError(f"engines is empty; give at least one of {list(ENGINES)}")
    if len(set(engines)) != len(engines):
        raise ValueError(f"engines has duplicates: {list(engines)}")
    for engine in engines:
        _require(engine)
    return engines


def _engine_version(engine: str) -> str:
    if engine == "espeak-ng":
        version, _ = espeak_library().info
        loader = importlib.metadata.version("espeakng-loader")
        return f"eSpeak NG {version} (espeakng-loader {loader})"
    return _command_version(_require(engine))


# keyed by the command's path: another flite on PATH is asked again
@functools.cache
def _command_version(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True)
    lines = [line.strip() for line in (out.stdout + out.stderr).splitlines()]
    return " ".join(line for line in lines if "version" in line.lower())


@functools.cache
def _espeak_variants() -> tuple[str, ...]:
    installed = espeak_library().variants()
    return tuple(v for v in _ESPEAK_VARIANTS if v in installed)


def _flite_voices() -> tuple[str, ...]:
    return _flite_command_voices(_require("flite"))


@functools.cache
def _flite_command_voices(path: str) -> tuple[str, ...]:
    out = subprocess.run([path, "-lv"], capture_output=True, text=True)
    if out.returncode != 0:
        message = out.stderr.strip() or f"exit {out.returncode}"
        raise SksegError(f"{path} -lv failed listing Flite's voices: {message}")
    installed = set(out.stdout.replace("Voices available:", "").split())
    return tuple(v for v in _FLITE_VOICES if v in installed)


def list_voices(engines: Sequence[str] | str = DEFAULT_ENGINES) -> list[str]:
    """List the voices of the given engines installed on this machine.

    A voice is ``"engine/name"``: an espeak-ng variant (a timbre, spoken in any
    language) or a Flite voice. Voices are what :func:`split_personas` keeps apart
    between splits.

    Parameters
    ----------
    engines : str or sequence of str, default=DEFAULT_ENGINES

    Returns
    -------
    voices : list of str
        In a fixed order (the module's curated order), so that a seed picks the
        same voices on every machine with the same engines.

    Raises
    ------
    EngineUnavailableError
        If an engine is not installed.
    ValueError
        If an engine is unknown.

    Examples
    --------
    >>> voices = list_voices("espeak-ng")
    >>> voices[:3]
    ['espeak-ng/m1', 'espeak-ng/m2', 'espeak-ng/m3']
    """
    out = []
    for engine in _engines(engines):
        names = _espeak_variants() if engine == "espeak-ng" else _flite_voices()
        out.extend(f"{engine}/{name}" for name in names)
    return out


# --------------------------------------------------------------------------- text

_EN_SUBJECTS = (
    "I", "we", "you", "they", "my sister", "the manager", "our neighbour",
    "the new team", "nobody", "everyone", "my brother", "the driver", "she", "he",
    "the students", "your friend", "the landlord", "the doctor",
)  # fmt: skip
_EN_VERBS = (
    ("saw", "see"), ("bought", "buy"), ("fixed", "fix"), ("missed", "miss"),
    ("moved", "move"), ("called", "call"), ("painted", "paint"), ("sold", "sell"),
    ("found", "find"), ("lost", "lose"), ("booked", "book"), ("checked", "check"),
    ("ordered", "order"), ("cleaned", "clean"), ("borrowed", "borrow"),
    ("forgot", "forget"), ("finished", "finish"), ("opened", "open"),
)  # fmt: skip
_EN_OBJECTS = (
    "the blue car", "a small house near the river", "the report", "three tickets",
    "the old piano", "the kitchen window", "a new phone", "the garden fence",
    "the last train", "the big order from the bakery", "the spare keys",
    "the budget for next year", "a cheap flight", "the broken chair",
    "the photos from the wedding", "the library books", "the washing machine",
    "the parking permit", "a table for six", "the results of the survey",
)  # fmt: skip
_EN_WHEN = (
    "yesterday", "last week", "this morning", "on Friday", "after lunch",
    "before the holidays", "again", "in the end", "twice", "at the weekend", "",
)  # fmt: skip
_EN_OPENERS = (
    "well", "you know", "honestly", "actually", "so", "anyway", "oh", "look",
    "to be fair", "I mean",
)  # fmt: skip
_EN_BACKCHANNELS = (
    "yeah", "right", "okay", "uh huh", "sure", "I see", "really?", "exactly",
    "mm", "oh wow", "no way", "of course", "yes", "true",
)  # fmt: skip

_SENTENCES = {
    "fr": (
        "Je crois que le train part à huit heures.",
        "Tu as vu le match hier soir ?",
        "Nous avons repeint la cuisine le week-end dernier.",
        "Elle travaille à la mairie depuis trois ans.",
        "On pourrait se retrouver après le déjeuner.",
        "Le boulanger a fermé plus tôt que prévu.",
        "Franchement, je ne sais pas quoi en penser.",
        "Il faut rendre les livres avant vendredi.",
        "Mon frère a acheté une voiture bleue.",
        "Tu peux m'envoyer le rapport ce soir ?",
        "Il a plu toute la journée, alors on est restés à la maison.",
        "Le budget de l'année prochaine n'est pas encore prêt.",
    ),
    "de": (
        "Ich glaube, der Zug fährt um acht Uhr.",
        "Hast du gestern das Spiel gesehen?",
        "Wir haben am Wochenende die Küche gestrichen.",
        "Sie arbeitet seit drei Jahren im Rathaus.",
        "Wir könnten uns nach dem Mittagessen treffen.",
        "Der Bäcker hat heute früher zugemacht.",
        "Ehrlich gesagt weiß ich es nicht genau.",
        "Die Bücher müssen bis Freitag zurück.",
        "Mein Bruder hat ein blaues Auto gekauft.",
        "Kannst du mir den Bericht heute Abend schicken?",
        "Es hat den ganzen Tag geregnet, also sind wir zu Hause geblieben.",
        "Das Budget für nächstes Jahr ist noch nicht fertig.",
    ),
    "es": (
        "Creo que el tren sale a las ocho.",
        "¿Viste el partido ayer por la noche?",
        "Pintamos la cocina el fin de semana pasado.",
        "Ella trabaja en el ayuntamiento desde hace tres años.",
        "Podríamos vernos después de comer.",
        "La panadería cerró antes de lo previsto.",
        "Sinceramente, no sé qué pensar.",
        "Hay que devolver los libros antes del viernes.",
        "Mi hermano se compró un coche azul.",
        "¿Me puedes mandar el informe esta tarde?",
        "Llovió todo el día, así que nos quedamos en casa.",
        "El presupuesto del año que viene todavía no está listo.",
    ),
    "it": (
        "Credo che il treno parta alle otto.",
        "Hai visto la partita ieri sera?",
        "Abbiamo dipinto la cucina lo scorso fine settimana.",
        "Lei lavora in comune da tre anni.",
        "Potremmo vederci dopo pranzo.",
        "Il panificio ha chiuso prima del solito.",
        "Sinceramente, non so cosa pensare.",
        "Bisogna restituire i libri entro venerdì.",
        "Mio fratello ha comprato una macchina blu.",
        "Mi puoi mandare la relazione stasera?",
        "Ha piovuto tutto il giorno, quindi siamo rimasti a casa.",
        "Il bilancio dell'anno prossimo non è ancora pronto.",
    ),
    "nl": (
        "Ik denk dat de trein om acht uur vertrekt.",
        "Heb je gisteren de wedstrijd gezien?",
        "We hebben vorig weekend de keuken geverfd.",
        "Ze werkt al drie jaar bij de gemeente.",
        "We kunnen na de lunch afspreken.",
        "De bakker ging vandaag eerder dicht.",
        "Eerlijk gezegd weet ik het niet precies.",
        "De boeken moeten voor vrijdag terug.",
        "Mijn broer heeft een blauwe auto gekocht.",
        "Kun je me het verslag vanavond sturen?",
        "Het regende de hele dag, dus we bleven thuis.",
        "De begroting voor volgend jaar is nog niet klaar.",
    ),
    "pt": (
        "Acho que o comboio parte às oito.",
        "Viste o jogo ontem à noite?",
        "Pintámos a cozinha no fim de semana passado.",
        "Ela trabalha na câmara há três anos.",
        "Podíamos encontrar-nos depois do almoço.",
        "A padaria fechou mais cedo do que o costume.",
        "Sinceramente, não sei o que pensar.",
        "Temos de devolver os livros até sexta-feira.",
        "O meu irmão comprou um carro azul.",
        "Podes mandar-me o relatório logo à noite?",
        "Choveu o dia todo, por isso ficámos em casa.",
        "O orçamento do próximo ano ainda não está pronto.",
    ),
}
_BACKCHANNELS = {
    "fr": ("oui", "d'accord", "ah bon", "voilà", "exactement", "bien sûr", "ouais"),
    "de": ("ja", "genau", "stimmt", "ach so", "okay", "natürlich", "klar"),
    "es": ("sí", "claro", "vale", "ya", "exacto", "¿en serio?", "bueno"),
    "it": ("sì", "certo", "esatto", "davvero?", "va bene", "ah ecco", "giusto"),
    "nl": ("ja", "precies", "klopt", "oké", "echt waar?", "natuurlijk", "inderdaad"),
    "pt": ("sim", "claro", "pois", "exato", "é verdade", "tá bom", "pois é"),
}


def _family(language: str) -> str:
    return language.split("-")[0]


def _sentence(rng: np.random.Generator, language: str) -> str:
    family = _family(language)
    if family != "en":
        bank = _SENTENCES[family]
        return bank[rng.integers(len(bank))]

    def pick(bank):
        return bank[rng.integers(len(bank))]

    kind = rng.integers(5)
    past, base = pick(_EN_VERBS)
    if kind == 0:
        text = f"did {pick(_EN_SUBJECTS)} {base} {pick(_EN_OBJECTS)} {pick(_EN_WHEN)}?"
    elif kind == 1:
        other_past, _ = pick(_EN_VERBS)
        text = (
            f"{pick(_EN_SUBJECTS)} {past} {pick(_EN_OBJECTS)}, and then "
            f"{pick(_EN_SUBJECTS)} {other_past} {pick(_EN_OBJECTS)}."
        )
    elif kind == 2:
        text = f"{pick(_EN_OPENERS)}, {pick(_EN_SUBJECTS)} {past} {pick(_EN_OBJECTS)}."
    elif kind == 3:
        text = f"why did {pick(_EN_SUBJECTS)} {base} {pick(_EN_OBJECTS)}?"
    else:
        text = f"{pick(_EN_SUBJECTS)} {past} {pick(_EN_OBJECTS)} {pick(_EN_WHEN)}."
    return " ".join(text.split()).replace(" ?", "?").replace(" .", ".")


def _backchannel(rng: np.random.Generator, language: str) -> str:
    bank = _BACKCHANNELS.get(_family(language), _EN_BACKCHANNELS)
    return bank[rng.integers(len(bank))]


# ---------------------------------------------------------------------- personas


@dataclass(frozen=True)
class Persona:
    """A synthetic speaker: an engine's voice with a language, pitch and speed.

    Parameters
    ----------
    engine : {"espeak-ng", "flite"}
    voice : str
        An espeak-ng variant (``"m3"``, ``"f2"``, ``"klatt"``...) or a Flite voice
        (``"awb"``, ``"kal16"``, ``"rms"``, ``"slt"``); see :func:`list_voices`.
    language : str
        An espeak-ng language (``"en-us"``, ``"fr-fr"``, ``"de"``...); ``"en"`` for
        Flite, which speaks English only.
    pitch : float
        espeak-ng: its ``-p`` pitch (0-99, 50 is the voice's own). Flite: a factor on
        the voice's mean F0 (1.0 is the voice's own; ``rms`` ignores it).
    speed : float
        espeak-ng: words per minute (``-s``, 175 is its default). Flite: a factor on
        duration (``duration_stretch``; above 1 is slower).

    Attributes
    ----------
    label : str
        The speaker's name in RTTM files: no spaces, unique per persona.

    Examples
    --------
    >>> persona = Persona("espeak-ng", "m3", "en-us", pitch=40, speed=160)
    >>> persona.label
    'espeak-ng_m3_en-us_p40_s160'
    >>> wav = persona.synthesize("Hello there.")  # 16 kHz mono float64
    >>> wav.dtype, 0.3 < len(wav) / 16000 < 2.0
    (dtype('float64'), True)
    """

    engine: str
    voice: str
    language: str
    pitch: float
    speed: float

    @property
    def voice_id(self) -> str:
        """``"engine/voice"``: what splits keep apart.

        Examples
        --------
        >>> Persona("flite", "slt", "en", 1.1, 0.95).voice_id
        'flite/slt'
        """
        return f"{self.engine}/{self.voice}"

    @property
    def label(self) -> str:
        """The speaker's name in RTTM files.

        Examples
        --------
        >>> Persona("flite", "slt", "en", 1.1, 0.95).label
        'flite_slt_en_p1.10_s0.95'
        """
        if self.engine == "espeak-ng":
            pitch, speed = f"{self.pitch:.0f}", f"{self.speed:.0f}"
        else:
            pitch, speed = f"{self.pitch:.2f}", f"{self.speed:.2f}"
        return f"{self.engine}_{self.voice}_{self.language}_p{pitch}_s{speed}"

    def synthesize(self, text: str) -> np.ndarray:
        """Speak ``text`` with this persona: a 16 kHz mono float64 waveform.

        The engine's leading and trailing silence is kept; :func:`generate_conversation`
        trims it by the reference's threshold.

        Parameters
        ----------
        text : str

        Returns
        -------
        waveform : ndarray of shape (n_samples,)

        Raises
        ------
        EngineUnavailableError
            If the persona's engine is not installed.
        SksegError
            If the engine fails or returns no audio.

        Examples
        --------
        >>> wav = Persona("espeak-ng", "f2", "en-gb", 60, 170).synthesize("Yes.")
        >>> bool(abs(wav).max() > 0.05)
        True
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text must be a non-empty string, got {text!r}")
        exe = _require(self.engine)
        if self.engine == "espeak-ng":
            samples, sample_rate = espeak_library().synthesize(
                f"{self.language}+{self.voice}",
                int(round(self.pitch)),
                int(round(self.speed)),
                text,
            )
            if not len(samples):
                raise SksegError(
                    f"espeak-ng failed for persona {self.label} on {text!r}: "
                    "no audio produced"
                )
            # the scale soundfile reads 16-bit PCM with
            return self._at_16_khz(samples / 32768.0, sample_rate)
        mean_f0 = _FLITE_VOICES.get(self.voice, 100.0) * self.pitch
        with tempfile.TemporaryDirectory(prefix="skseg-flite-") as tmp:
            wav_path = os.path.join(tmp, "out.wav")
            command = [
                exe, "-voice", self.voice,
                "--setf", f"duration_stretch={self.speed:.4f}",
                "--setf", f"int_f0_target_mean={mean_f0:.2f}",
                "-t", text, "-o", wav_path,
            ]  # fmt: skip
            out = subprocess.run(command, capture_output=True)
            data = Path(wav_path).read_bytes() if os.path.exists(wav_path) else b""
        if out.returncode != 0 or len(data) <= 44:
            message = out.stderr.decode(errors="replace").strip()
            raise SksegError(
                f"{self.engine} failed for persona {self.label} on {text!r} "
                f"(exit {out.returncode}): {message or 'no audio produced'}"
            )
        wav, sr = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
        return self._at_16_khz(wav.mean(axis=1), sr)

    @staticmethod
    def _at_16_khz(wav: np.ndarray, sr: int) -> np.ndarray:
        if sr != SAMPLE_RATE:
            g = math.gcd(int(sr), SAMPLE_RATE)
            wav = signal.resample_poly(wav, SAMPLE_RATE // g, int(sr) // g)
        return wav


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_seed(seed) -> int:
    return _check_int("seed", seed, 0)


def split_personas(
    seed: int = 0,
    *,
    engines: Sequence[str] | str = DEFAULT_ENGINES,
    fractions: tuple[float, float, float] = (0.6, 0.15, 0.25),
    personas_per_voice: int = 2,
) -> dict[str, list[Persona]]:
    """Draw the speakers of the train, validation and test splits, voices disjoint.

    Each engine's installed voices are shuffled by ``seed`` and cut into three
    parts by ``fractions`` (each part gets at least one voice of the engine when it
    has three or more); each voice then gets ``personas_per_voice`` personas with
    their own language, pitch and speed. No voice, hence no persona, is in two splits.

    Parameters
    ----------
    seed : int, default=0
    engines : str or sequence of str, default=DEFAULT_ENGINES
    fractions : tuple of 3 floats, default=(0.6, 0.15, 0.25)
        Shares of each engine's voices for train, validation and test.
    personas_per_voice : int, default=2

    Returns
    -------
    personas : dict
        ``{"train": [...], "val": [...], "test": [...]}``, lists of :class:`Persona`.

    Raises
    ------
    EngineUnavailableError
        If an engine is not installed.
    ValueError
        If an argument is invalid.

    Examples
    --------
    >>> splits = split_personas(seed=0)
    >>> train = {p.voice_id for p in splits["train"]}
    >>> test = {p.voice_id for p in splits["test"]}
    >>> train.isdisjoint(test), len(splits["test"]) > 0
    (True, True)
    """
    seed = _check_seed(seed)
    personas_per_voice = _check_int("personas_per_voice", personas_per_voice, 1)
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(not f >= 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(
            "fractions must be 3 non-negative numbers (train, val, test) with a "
            f"positive sum, got {fractions!r}"
        )
    total = sum(fractions)
    fractions = tuple(f / total for f in fractions)
    out: dict[str, list[Persona]] = {split: [] for split in _SPLITS}
    for engine_index, engine in enumerate(_engines(engines)):
        voices = [v.split("/", 1)[1] for v in list_voices(engine)]
        rng = np.random.default_rng([seed, 1, engine_index])
        voices = [voices[i] for i in rng.permutation(len(voices))]
        n = len(voices)
        sizes = [int(round(f * n)) for f in fractions]
        if n >= 3:  # every split with a share hears every engine
            sizes = [
                max(size, 1) if f > 0 else 0
                for size, f in zip(sizes, fractions, strict=True)
            ]
        while sum(sizes) > n:
            sizes[int(np.argmax(sizes))] -= 1
        while sum(sizes) < n:
            sizes[int(np.argmax(fractions))] += 1
        start = 0
        for split, size in zip(_SPLITS, sizes, strict=True):
            for voice in voices[start : start + size]:
                for _ in range(personas_per_voice):
                    out[split].append(_draw_persona(rng, engine, voice))
            start += size
    return out


def _draw_persona(rng: np.random.Generator, engine: str, voice: str) -> Persona:
    if engine == "espeak-ng":
        if rng.random() < 0.75:
            language = _ENGLISH[rng.integers(len(_ENGLISH))]
        else:
            language = _OTHER_LANGUAGES[rng.integers(len(_OTHER_LANGUAGES))]
        pitch = float(rng.integers(25, 76))
        speed = float(rng.integers(140, 196))
    else:
        language = "en"
        pitch = 1.0 if voice in _FLITE_FIXED_PITCH else float(rng.uniform(0.85, 1.2))
        speed = float(rng.uniform(0.85, 1.15))
        pitch, speed = round(pitch, 2), round(speed, 2)
    return Persona(engine, voice, language, pitch, speed)


# ------------------------------------------------------------------ conversation


def _speech_bounds(
    wav: np.ndarray, threshold_db: float, min_pause: float
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Trim an utterance to its speech; return it and its speech regions (samples).

    Speech is every sample above the utterance's peak minus ``threshold_db``;
    silences of ``min_pause`` or more split the utterance into regions.
    """
    magnitude = np.abs(wav)
    peak = magnitude.max(initial=0.0)
    if not peak > 0:
        return wav[:0], []
    loud = np.flatnonzero(magnitude > peak * 10 ** (-threshold_db / 20))
    first, last = int(loud[0]), int(loud[-1]) + 1
    loud = loud - first
    pause = int(round(min_pause * SAMPLE_RATE))
    cuts = np.flatnonzero(np.diff(loud) >= pause)
    starts = np.concatenate([[0], loud[cuts + 1]])
    ends = np.concatenate([loud[cuts] + 1, [last - first]])
    return wav[first:last], [
        (int(s), int(e)) for s, e in zip(starts, ends, strict=True)
    ]


def _merge(regions: list[tuple[int, int]], pause: int) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for start, end in sorted(regions):
        if out and start - out[-1][1] < pause:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def _colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with a power spectrum in 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    freqs[0] = freqs[1] if n > 1 else 1.0
    spectrum *= np.maximum(freqs, 20.0) ** (-exponent / 2)
    out = np.fft.irfft(spectrum, n)
    return out / (out.std() + 1e-12)


def _babble(rng: np.random.Generator, n: int) -> np.ndarray:
    """Speech-shaped noise modulated at syllable rates, like distant babble.

    Not speech: nothing in it is a word, so the reference stays "no speech" there.
    """
    shaped = _colored_noise(rng, n, 1.0)
    sos = signal.butter(4, [150, 4000], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    shaped = signal.sosfilt(sos, shaped)
    envelope_sos = signal.butter(2, 4.0, fs=SAMPLE_RATE, output="sos")
    envelope = np.zeros(n)
    for _ in range(6):  # six distant talkers' syllabic envelopes
        envelope += np.abs(signal.sosfilt(envelope_sos, rng.standard_normal(n)))
    out = shaped * envelope
    return out / (out.std() + 1e-12)


_NOISES = ("white", "pink", "brown", "babble")
_BANDS = ("full", "telephone")


def _noise(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    if kind == "babble":
        return _babble(rng, n)
    return _colored_noise(rng, n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])


def _check_choices(name: str, values, allowed: tuple | None = None) -> tuple:
    if isinstance(values, str) or values is None or np.isscalar(values):
        values = (values,)
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} is empty; give at least one value")
    if allowed is not None:
        for value in values:
            if value not in allowed:
                raise ValueError(
                    f"{name}: unknown value {value!r}; expected some of {list(allowed)}"
                )
    return values


def _check_options(
    duration, n_speakers, overlap, snr, noise, band, min_pause, backchannels
):
    if isinstance(duration, bool) or not isinstance(duration, Real):
        raise ValueError(f"duration must be a number of seconds, got {duration!r}")
    if not 5.0 <= duration <= 3600.0:
        raise ValueError(f"duration must be between 5 and 3600 s, got {duration}")
    if isinstance(n_speakers, int | np.integer):
        n_speakers = (int(n_speakers), int(n_speakers))
    n_speakers = tuple(n_speakers)
    if (
        len(n_speakers) != 2
        or not all(isinstance(n, int | np.integer) for n in n_speakers)
        or not 1 <= n_speakers[0] <= n_speakers[1]
    ):
        raise ValueError(
            "n_speakers must be an integer >= 1 or a (min, max) pair of them, "
            f"got {n_speakers!r}"
        )
    if not isinstance(overlap, Real) or not 0.0 <= overlap <= 0.5:
        raise ValueError(
            f"overlap must be a fraction of speech time in [0, 0.5], got {overlap!r}"
        )
    snrs = _check_choices("snr", snr)
    for value in snrs:
        if value is not None and not (isinstance(value, Real) and -10 <= value <= 60):
            raise ValueError(f"snr: {value!r} is not None or a dB value in [-10, 60]")
    noises = _check_choices("noise", noise, _NOISES)
    bands = _check_choices("band", band, _BANDS)
    if not isinstance(min_pause, Real) or not 0.05 <= min_pause <= 2.0:
        raise ValueError(f"min_pause must be in [0.05, 2] s, got {min_pause!r}")
    if not isinstance(backchannels, Real) or not 0.0 <= backchannels <= 1.0:
        raise ValueError(
            f"backchannels must be a probability in [0, 1], got {backchannels!r}"
        )
    return float(duration), n_speakers, float(overlap), snrs, noises, bands


def generate_conversation(
    personas: Sequence[Persona],
    duration: float = 30.0,
    seed: int = 0,
    *,
    uri: str = "conversation",
    n_speakers: int | tuple[int, int] = (2, 4),
    overlap: float = 0.1,
    backchannels: float = 0.3,
    snr: Sequence[float | None] = (None, 20.0, 10.0, 5.0),
    noise: Sequence[str] = ("white", "pink", "brown", "babble"),
    band: Sequence[str] = ("full", "telephone"),
    min_pause: float = 0.3,
) -> dict:
    """Generate one conversation with its exact reference, in memory.

    Speakers (``n_speakers`` of ``personas``, drawn by ``seed``) take turns of one
    to three sentences, separated by gaps, sometimes by long silences; a turn starts
    before the previous one ends whenever the overlap so far is below ``overlap``,
    and listeners drop back-channels ("yeah", "right") into long turns. Each
    speaker has a level (0 to -10 dB, plus +-2 dB per turn); the mixture then gets
    one noise at one SNR, may change level once or twice, may be band-limited to
    the telephone band (300-3400 Hz), and is scaled to a peak between -20 and
    -1 dBFS. Choices among ``snr``, ``noise`` and ``band`` are uniform.

    Parameters
    ----------
    personas : sequence of Persona
        The pool of speakers to draw from (e.g. one split of :func:`split_personas`).
    duration : float, default=30.0
        Length in seconds (5 to 3600).
    seed : int, default=0
    uri : str, default="conversation"
    n_speakers : int or (int, int), default=(2, 4)
        Number of speakers, or a range drawn uniformly (capped by the pool).
    overlap : float, default=0.1
        Target fraction of speech time during which two or more speak (0 to 0.5);
        the generator steers towards it, ``metadata["overlap"]`` is the achieved one.
    backchannels : float, default=0.3
        Probability that a listener drops a back-channel into a turn of 1.5 s or more.
    snr : sequence of float or None, default=(None, 20, 10, 5)
        SNRs in dB to draw from; None is clean. The SNR is the power of the speech
        (where the reference says someone speaks) over the power of the noise, as
        they are mixed: the channel's level changes come after and scale both
        alike, so they keep it at every instant. The channel's draws (level
        changes, band, peak level) do not depend on the SNR drawn.
    noise : sequence of {"white", "pink", "brown", "babble"}
        Noise types to draw from ("babble" is speech-shaped noise with syllabic
        modulation, no words).
    band : sequence of {"full", "telephone"}, default=("full", "telephone")
    min_pause : float, default=0.3
        Silences of this length or more within a speaker are not speech in the
        reference; shorter ones are bridged.

    Returns
    -------
    file : dict
        ``{"waveform": (1, n) float32, "sample_rate": 16000, "uri", "annotation",
        "annotated", "sources", "metadata"}``: a file every skseg estimator takes;
        ``sources`` maps each speaker label to its clean (n,) float32 signal as mixed
        in (before noise, level changes and band limits); ``metadata`` has the draws
        and the achieved overlap and speech ratios.

    Raises
    ------
    ValueError
        If an argument is invalid.
    EngineUnavailableError
        If a persona's engine is not installed.

    Examples
    --------
    >>> personas = split_personas(seed=0, engines="espeak-ng")["train"]
    >>> file = generate_conversation(personas, duration=10.0, seed=1, snr=[20.0])
    >>> file["waveform"].shape, file["annotated"].duration()
    ((1, 160000), 10.0)
    >>> len(file["annotation"].labels()) >= 2, file["metadata"]["snr"]
    (True, 20.0)
    """
    duration, n_speakers, overlap, snrs, noises, bands = _check_options(
        duration, n_speakers, overlap, snr, noise, band, min_pause, backchannels
    )
    seed = _check_seed(seed)
    personas = list(personas)
    if not personas or not all(isinstance(p, Persona) for p in personas):
        raise ValueError("personas must be a non-empty sequence of Persona")
    if len({p.label for p in personas}) != len(personas):
        raise ValueError("personas has duplicates (two personas with one label)")
    if not isinstance(uri, str) or not uri or any(c.isspace() for c in uri):
        raise ValueError(f"uri must be a non-empty string without spaces, got {uri!r}")
    for engine in {p.engine for p in personas}:
        _require(engine)
    rng = np.random.default_rng([seed, 2])
    n = int(round(duration * SAMPLE_RATE))
    pause = int(round(min_pause * SAMPLE_RATE))

    count = int(rng.integers(n_speakers[0], n_speakers[1] + 1))
    count = min(count, len(personas))
    chosen = [personas[i] for i in sorted(rng.choice(len(personas), count, False))]
    gains = {p.label: 10 ** (-rng.uniform(0.0, 10.0) / 20) for p in chosen}
    sources = {p.label: np.zeros(n) for p in chosen}
    regions: dict[str, list[tuple[int, int]]] = {p.label: [] for p in chosen}
    busy_until = {p.label: 0 for p in chosen}  # a speaker never overlaps itself
    # speaking count per 10 ms frame: steers the overlap ratio cheaply
    hop = SAMPLE_RATE // 100
    active = np.zeros(n // hop + 1, dtype=np.int16)

    def speak(persona: Persona, text: str, start: int) -> int | None:
        """Mix one utterance in at ``start``; return its end, None if it won't fit."""
        wav, spans = _speech_bounds(persona.synthesize(text), _THRESHOLD_DB, min_pause)
        if not spans or start + len(wav) > n:
            return None
        loud = np.concatenate([wav[s:e] for s, e in spans])
        level = 0.1 / (np.sqrt(np.mean(loud**2)) + 1e-12)  # -20 dBFS speech
        level *= gains[persona.label] * 10 ** (rng.uniform(-2.0, 2.0) / 20)
        sources[persona.label][start : start + len(wav)] += level * wav
        for s, e in spans:
            regions[persona.label].append((start + s, start + e))
            active[(start + s) // hop : (start + e) // hop + 1] += 1
        busy_until[persona.label] = start + len(wav)
        return start + len(wav)

    def overlap_so_far() -> float:
        speech = np.count_nonzero(active)
        return np.count_nonzero(active > 1) / speech if speech else 0.0

    tail = int(rng.uniform(0.2, 1.0) * SAMPLE_RATE)
    t = int(rng.uniform(0.2, 1.5) * SAMPLE_RATE)
    previous: Persona | None = None
    failures = n_backchannels = 0
    while t < n - tail and failures < 3:
        others = [p for p in chosen if p is not previous] or chosen
        # everyone drawn speaks early on, so a short file still has them all
        silent = [p for p in others if not regions[p.label]]
        others = silent or others
        if previous is not None and rng.random() < 0.15:
            speaker = previous  # the same speaker goes on after a pause
        else:
            speaker = others[rng.integers(len(others))]
        t = max(t, busy_until[speaker.label] + int(0.1 * SAMPLE_RATE))
        turn_start, end = t, None
        for k in range(int(rng.integers(1, 4))):
            if k:
                t = end + int(rng.uniform(0.15, 0.7) * SAMPLE_RATE)
            placed = speak(speaker, _sentence(rng, speaker.language), t)
            if placed is None:
                break
            end = placed
        if end is None:
            failures += 1
            t += int(0.5 * SAMPLE_RATE)
            continue
        failures = 0
        turn = end - turn_start
        listeners = [p for p in chosen if p is not speaker]
        if listeners and turn >= 1.5 * SAMPLE_RATE and rng.random() < backchannels:
            listener = listeners[rng.integers(len(listeners))]
            at = turn_start + int(rng.uniform(0.3, 0.8) * turn)
            if at >= busy_until[listener.label]:
                if speak(listener, _backchannel(rng, listener.language), at):
                    n_backchannels += 1
        deficit = overlap - overlap_so_far()
        if count > 1 and deficit > 0:
            # the next speaker starts before this turn ends, the earlier the further
            # the overlap so far is below the target
            share = min(0.25 + 2.0 * deficit, 0.8) * rng.uniform(0.7, 1.3)
            t = end - int(share * min(turn, 4 * SAMPLE_RATE))
        elif rng.random() < 0.12:
            t = end + int(rng.uniform(1.5, 5.0) * SAMPLE_RATE)  # a long silence
        else:
            t = end + int(rng.uniform(0.1, 1.2) * SAMPLE_RATE)
        previous = speaker

    # a speaker who never got a turn in (a very short file) is not in the file
    chosen = [p for p in chosen if regions[p.label]]
    sources = {p.label: sources[p.label] for p in chosen}
    annotation = Annotation(uri=uri)
    for label in sorted(regions):
        for s, e in _merge(regions[label], pause):
            annotation[Segment(s / SAMPLE_RATE, e / SAMPLE_RATE)] = label
    speech = np.zeros(n, dtype=bool)
    for label in regions:
        for s, e in _merge(regions[label], pause):
            speech[s:e] = True
    mixture = sum(sources.values()) if sources else np.zeros(n)

    snr_value = snrs[rng.integers(len(snrs))]
    noise_kind = noises[rng.integers(len(noises))] if snr_value is not None else None
    if snr_value is not None:
        speech_power = np.mean(mixture[speech] ** 2) if speech.any() else 1e-2
        noise_level = np.sqrt(speech_power / 10 ** (snr_value / 10))
        mixture = mixture + noise_level * _noise(rng, noise_kind, n)

    # the channel: level changes (a gain step, smoothed over 50 ms) and band. Its
    # draws have their own stream: the noise consumes a number of draws that
    # depends on the SNR drawn, and the channel must not change with it
    channel = np.random.default_rng([seed, 3])
    level_changes = []
    gain = np.ones(n)
    for _ in range(int(channel.choice(3, p=[0.6, 0.25, 0.15]))):
        at = int(channel.integers(n))
        step_db = float(channel.choice([-1, 1]) * channel.uniform(3.0, 10.0))
        gain[at:] *= 10 ** (step_db / 20)
        level_changes.append((round(at / SAMPLE_RATE, 3), round(step_db, 2)))
    if level_changes:
        width = int(0.05 * SAMPLE_RATE)
        gain = np.convolve(np.pad(gain, width, mode="edge"), np.ones(width) / width)
        gain = gain[width + width // 2 : width + width // 2 + n]
        mixture = mixture * gain
    band_kind = bands[channel.integers(len(bands))]
    if band_kind == "telephone":
        # zero-phase, so that nothing moves against the reference
        sos = signal.butter(4, [300, 3400], "bandpass", fs=SAMPLE_RATE, output="sos")
        mixture = signal.sosfiltfilt(sos, mixture)
    peak_db = float(channel.uniform(-20.0, -1.0))
    scale = 10 ** (peak_db / 20) / (np.abs(mixture).max() + 1e-12)
    waveform = (mixture * scale).astype(np.float32)[None]

    speech_time = float(np.count_nonzero(speech)) / SAMPLE_RATE
    overlap_time = annotation.get_overlap().duration()
    metadata = {
        "uri": uri,
        "seed": seed,
        "duration": duration,
        "speakers": [p.label for p in chosen],
        "voices": sorted({p.voice_id for p in chosen}),
        "snr": snr_value,
        "noise": noise_kind,
        "band": band_kind,
        "backchannels": n_backchannels,
        "level_changes": level_changes,
        "peak_dbfs": round(peak_db, 2),
        "speech_ratio": round(speech_time / duration, 4),
        "overlap": round(overlap_time / speech_time, 4) if speech_time else 0.0,
    }
    return {
        "waveform": waveform,
        "sample_rate": SAMPLE_RATE,
        "uri": uri,
        "annotation": annotation,
        "annotated": Timeline([Segment(0.0, n / SAMPLE_RATE)], uri=uri),
        "sources": {k: (v * scale).astype(np.float32) for k, v in sources.items()},
        "metadata": metadata,
    }


def write_conversations(
    out_dir: str | os.PathLike,
    personas: Sequence[Persona],
    n_files: int,
    duration: float = 30.0,
    seed: int = 0,
    *,
    prefix: str = "conv",
    **options,
) -> list[dict]:
    """Generate conversations into a folder: ``uri.wav`` + ``uri.rttm`` + ``uri.uem``.

    The folder is what :func:`skseg.io.load_folder` and ``skseg tune`` read. File
    ``i`` is ``generate_conversation(personas, duration, seed=<seed, i>, ...)``;
    its audio is 16-bit PCM WAV at 16 kHz.

    Parameters
    ----------
    out_dir : str or PathLike
        Created if needed; existing files with the same names are replaced.
    personas : sequence of Persona
    n_files : int
    duration : float, default=30.0
    seed : int, default=0
    prefix : str, default="conv"
        Files are ``{prefix}-{i:04d}``.
    **options
        Passed to :func:`generate_conversation` (``n_speakers``, ``overlap``,
        ``backchannels``, ``snr``, ``noise``, ``band``, ``min_pause``).

    Returns
    -------
    metadata : list of dict
        Each file's ``metadata`` (see :func:`generate_conversation`).

    Examples
    --------
    >>> import tempfile
    >>> from skseg.io import load_folder
    >>> personas = split_personas(seed=0, engines="espeak-ng")["val"]
    >>> folder = tempfile.mkdtemp()
    >>> meta = write_conversations(folder, personas, n_files=1, duration=8.0)
    >>> X, y = load_folder(folder)
    >>> X[0]["uri"], X[0]["annotated"].duration()
    ('conv-0000', 8.0)
    """
    n_files = _check_int("n_files", n_files, 0)
    seed = _check_seed(seed)
    unknown = set(options) - {
        "n_speakers", "overlap", "backchannels", "snr", "noise", "band", "min_pause",
    }  # fmt: skip
    if unknown:
        raise TypeError(f"unknown options: {sorted(unknown)}")
    if not isinstance(prefix, str) or not prefix or any(c in prefix for c in " /\\"):
        raise ValueError(f"prefix must be a non-empty name, got {prefix!r}")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    metadata = []
    for i in range(n_files):
        uri = f"{prefix}-{i:04d}"
        file = generate_conversation(
            personas, duration, seed=seed * 100003 + i, uri=uri, **options
        )
        sf.write(out / f"{uri}.wav", file["waveform"][0], SAMPLE_RATE, "PCM_16")
        write_rttm(file["annotation"], out / f"{uri}.rttm")
        write_uem({uri: file["annotated"]}, out / f"{uri}.uem")
        metadata.append(file["metadata"])
    return metadata


def make_corpus(
    out_dir: str | os.PathLike,
    n_train: int = 20,
    n_val: int = 5,
    n_test: int = 10,
    duration: float = 30.0,
    seed: int = 0,
    *,
    engines: Sequence[str] | str = DEFAULT_ENGINES,
    personas_per_voice: int = 2,
    overwrite: bool = False,
    **options,
) -> dict[str, Path]:
    """Write a train / validation / test corpus whose splits share no speaker or voice.

    ``out_dir/train``, ``out_dir/val`` and ``out_dir/test`` each hold conversations
    (see :func:`write_conversations`) between the personas of that split (see
    :func:`split_personas`); ``out_dir/manifest.json`` records the seed, the
    options, the engines' versions, every split's personas and every file's draws.

    Parameters
    ----------
    out_dir : str or PathLike
    n_train, n_val, n_test : int, default=20, 5, 10
        Files per split (0 leaves a split empty and writes no folder for it).
    duration : float, default=30.0
        Seconds per file.
    seed : int, default=0
    engines : str or sequence of str, default=DEFAULT_ENGINES
    personas_per_voice : int, default=2
    overwrite : bool, default=False
        Remove the split folders (``train``, ``val``, ``test``) if they exist, even
        those of a split not asked for now; otherwise an existing non-empty split
        folder is an error.
    **options
        Passed to :func:`generate_conversation`.

    Returns
    -------
    folders : dict
        ``{"train": Path, "val": Path, "test": Path}`` for the non-empty splits.

    Raises
    ------
    ValueError
        If an argument is invalid or a split folder exists (without ``overwrite``).
    EngineUnavailableError
        If an engine is not installed.

    Examples
    --------
    >>> import json, tempfile
    >>> from skseg.io import load_folder
    >>> out = tempfile.mkdtemp()
    >>> folders = make_corpus(out, n_train=1, n_val=0, n_test=1, duration=6.0)
    >>> sorted(folders)
    ['test', 'train']
    >>> X, y = load_folder(folders["test"])
    >>> manifest = json.load(open(f"{out}/manifest.json"))
    >>> train = {p["engine"] + "/" + p["voice"] for p in manifest["personas"]["train"]}
    >>> test = {p["engine"] + "/" + p["voice"] for p in manifest["personas"]["test"]}
    >>> train.isdisjoint(test)
    True
    """
    counts = {
        "train": _check_int("n_train", n_train, 0),
        "val": _check_int("n_val", n_val, 0),
        "test": _check_int("n_test", n_test, 0),
    }
    if not any(counts.values()):
        raise ValueError("n_train, n_val and n_test are all 0: nothing to generate")
    seed = _check_seed(seed)
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite must be True or False, got {overwrite!r}")
    engines = _engines(engines)
    # validate every option before anything is written
    _check_options(
        duration,
        options.get("n_speakers", (2, 4)),
        options.get("overlap", 0.1),
        options.get("snr", (None, 20.0, 10.0, 5.0)),
        options.get("noise", _NOISES),
        options.get("band", _BANDS),
        options.get("min_pause", 0.3),
        options.get("backchannels", 0.3),
    )
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    # a split left over from another corpus would contradict the manifest: every
    # split folder goes, including those of splits not asked for this time
    for split in _SPLITS:
        folder = out / split
        if folder.exists() and any(folder.iterdir()):
            if not overwrite:
                raise ValueError(
                    f"{folder}: exists and is not empty; pass overwrite=True "
                    "(--overwrite) to replace it"
                )
            shutil.rmtree(folder)
    personas = split_personas(
        seed, engines=engines, personas_per_voice=personas_per_voice
    )
    folders: dict[str, Path] = {}
    files: dict[str, list[dict]] = {}
    for index, (split, count) in enumerate(counts.items()):
        if not count:
            continue
        folders[split] = out / split
        files[split] = write_conversations(
            out / split,
            personas[split],
            count,
            duration,
            seed=seed * 10 + index,
            prefix=split,
            **options,
        )
    manifest = {
        "generator": "skseg.synthetic",
        "seed": seed,
        "duration": float(duration),
        "counts": counts,
        "engines": {engine: _engine_version(engine) for engine in engines},
        "options": {
            k: list(v) if isinstance(v, tuple) else v for k, v in options.items()
        },
        "personas": {
            split: [asdict(p) | {"label": p.label} for p in personas[split]]
            for split in _SPLITS
        },
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return folders


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m skseg.synthetic",
        description="Write a synthetic train/val/test corpus (audio + RTTM + UEM).",
    )
    parser.add_argument("out_dir")
    parser.add_argument("--train", type=int, default=20)
    parser.add_argument("--val", type=int, default=5)
    parser.add_argument("--test", type=int, default=10)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overlap", type=float, default=0.1)
    parser.add_argument("--engines", nargs="+", default=list(DEFAULT_ENGINES))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        folders = make_corpus(
            args.out_dir, args.train, args.val, args.test, args.duration, args.seed,
            engines=args.engines, overwrite=args.overwrite, overlap=args.overlap,
        )  # fmt: skip
    except (SksegError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split, folder in folders.items():
        print(f"{split}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
