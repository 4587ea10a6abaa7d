"""Whole recordings: decode a video or image sequence, label every frame, and export the results.

No HTTP here: the jobs runner and the ``analyze`` command line both call
``analysis.analyse_recording`` and ``exports.write_results``.
"""
