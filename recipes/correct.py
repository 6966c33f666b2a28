# prodigy skseg.vad.correct DATASET SOURCE -F recipes/correct.py  (also osd, segment)
from skseg.annotation.prodigy import register

vad_correct = register("skseg.vad.correct")
osd_correct = register("skseg.osd.correct")
segment_correct = register("skseg.segment.correct")
