"""Runs genai-perf's own parser (LLMProfileDataParser) on a perf_analyzer-format profile export
and prints, as JSON on stdout, the statistics genai-perf would write to
profile_export_genai_perf.json: per experiment, the stats dict after scale_data() (ns -> ms), the
same call genai-perf's OutputReporter makes before its JsonExporter dumps it.

    .peers/bin/python peers/genai-perf-parse.py PROFILE_EXPORT.json TOKENIZER_DIR [GOODPUT_JSON]

Used by test/peers/genai-perf-compat.test.ts and bench/peers.ts; needs the peers venv.
"""

import json
import sys
from pathlib import Path

from genai_perf.profile_data_parser import LLMProfileDataParser
from genai_perf.tokenizer import Tokenizer


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    export, tokenizer_dir = Path(sys.argv[1]), sys.argv[2]
    goodput = json.loads(sys.argv[3]) if len(sys.argv) == 4 else {}
    tokenizer = Tokenizer()
    tokenizer.set_tokenizer(tokenizer_dir, False, "main")
    parser = LLMProfileDataParser(
        filename=export, tokenizer=tokenizer, goodput_constraints=goodput
    )
    out = []
    for mode, level in parser.get_profile_load_info():
        stats = parser.get_statistics(mode, level)
        stats.scale_data()
        out.append({"mode": mode, "level": level, "stats": stats.stats_dict})
    sessions = parser.get_session_statistics()
    json.dump({"experiments": out, "sessions": len(sessions)}, sys.stdout)


if __name__ == "__main__":
    main()
