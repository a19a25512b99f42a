'use strict';
/**
 * The model description carried in the ONNX metadata: every key is `gicnet.<field>`, every
 * value JSON (gicnet_runtime/description.py).  Parsed and checked as the Python runtime does.
 */
/** Newest contract version read here: 2 (ensemble files); single networks may carry 1 or 2. */
const FORMAT_VERSION = 2;
/** Version from which a file may be an ensemble file (gicnet.n_members, a member axis). */
const ENSEMBLE_FORMAT_VERSION = 2;
const PREFIX = 'gicnet.';
const HEADS = ['basis', 'time'];
const RESTORE_DEFICITS = ['end', 'mean'];
const REQUIRED = ['atomic_numbers', 'masses_amu', 'ic_rows', 'dummy_points_A', 'tc_fs',
  'gate_width_fs', 'has_energy'];

/**
 * Description from metadata_props ({key: JSON string}); throws for missing, malformed or
 * newer metadata.  Returns {atomic_numbers, masses_amu, ic_rows, dummy_points_A, tc_fs,
 * gate_width_fs, has_energy, frame, unroll_segment_fs (fs, or null: tc),
 * unroll_restore_fraction (or null: 1), unroll_restore_deficit ("end", "mean" or null:
 * "end"), unroll_reversal_share (in [0, 1], or null: 0, no time-reversal correction),
 * head ("basis" or "time"; absent: "time"), n_basis (or null), provenance,
 * validation, n_members (an ensemble file's member count M, its outputs carrying a leading
 * member axis; null: a single network),
 * member_validation (an ensemble file's M members' validation objects, or null),
 * format_version, units, n_atoms}.  The head is informative: the graph's inputs and outputs
 * are the same for both.
 */
function parseDescription(props) {
  if (!(PREFIX + 'format_version' in props)) {
    throw new Error('model has no gicnet metadata (not a gicnet model?)');
  }
  const raw = {};
  for (const [key, value] of Object.entries(props)) {
    if (!key.startsWith(PREFIX)) continue;
    try {
      raw[key.slice(PREFIX.length)] = JSON.parse(value);
    } catch (err) {
      throw new Error(`model metadata ${key} is not valid JSON: ${err.message}`);
    }
  }
  const version = raw.format_version;
  if (!Number.isInteger(version) || version < 1) {
    throw new Error(`model metadata has an invalid format_version ${JSON.stringify(version)}`);
  }
  if (version > FORMAT_VERSION) {
    throw new Error(`model format version ${version} is newer than this client supports `
      + `(${FORMAT_VERSION}); upgrade the client`);
  }
  const missing = REQUIRED.filter((k) => !(k in raw));
  if (missing.length) throw new Error(`model metadata lacks ${missing.join(', ')}`);
  const desc = {frame: 'initial-body-frame', unroll_segment_fs: null,
    unroll_restore_fraction: null, unroll_restore_deficit: null, unroll_reversal_share: null,
    head: 'time',
    n_basis: null, provenance: {}, validation: {}, n_members: null, member_validation: null,
    ...raw};
  check(desc);
  desc.n_atoms = desc.atomic_numbers.length;
  return desc;
}

function check(desc) {
  const n = desc.atomic_numbers.length;
  if (desc.masses_amu.length !== n || desc.ic_rows.length !== n
      || desc.ic_rows.some((r) => r.length !== 4)) {
    throw new Error('model metadata is malformed: atomic_numbers, masses_amu and ic_rows '
      + 'disagree in length');
  }
  if (!(desc.tc_fs > 0) || !(desc.gate_width_fs > 0)) {
    throw new Error('model metadata is malformed: tc_fs and gate_width_fs must be positive');
  }
  if (!HEADS.includes(desc.head)) {
    throw new Error(`model metadata is malformed: head must be one of ${HEADS.join(', ')}, `
      + `got ${JSON.stringify(desc.head)}`);
  }
  if (desc.head === 'basis' && !(Number.isInteger(desc.n_basis) && desc.n_basis >= 1)) {
    throw new Error('model metadata is malformed: a basis head needs n_basis >= 1, got '
      + JSON.stringify(desc.n_basis));
  }
  if (desc.n_members !== null) {
    if (!(Number.isInteger(desc.n_members) && desc.n_members >= 1)) {
      throw new Error('model metadata is malformed: n_members must be an integer >= 1, got '
        + JSON.stringify(desc.n_members));
    }
    if (desc.format_version < ENSEMBLE_FORMAT_VERSION) {
      throw new Error('model metadata is malformed: an ensemble file (n_members) needs '
        + `format_version >= ${ENSEMBLE_FORMAT_VERSION}, got ${desc.format_version}`);
    }
  }
  const members = desc.member_validation;
  if (members !== null && (desc.n_members === null || !Array.isArray(members)
      || members.length !== desc.n_members
      || !members.every((m) => m !== null && typeof m === 'object' && !Array.isArray(m)))) {
    throw new Error('model metadata is malformed: member_validation must hold one object per '
      + 'member');
  }
  const segment = desc.unroll_segment_fs;
  if (segment !== null && !(typeof segment === 'number' && segment > 0 && segment <= desc.tc_fs)) {
    throw new Error('model metadata is malformed: unroll_segment_fs must lie in (0, tc_fs], '
      + `got ${JSON.stringify(segment)}`);
  }
  const fraction = desc.unroll_restore_fraction;
  if (fraction !== null && !(typeof fraction === 'number' && fraction > 0 && fraction <= 1)) {
    throw new Error('model metadata is malformed: unroll_restore_fraction must lie in (0, 1], '
      + `got ${JSON.stringify(fraction)}`);
  }
  const share = desc.unroll_reversal_share;
  if (share !== null && !(typeof share === 'number' && share >= 0 && share <= 1)) {
    throw new Error('model metadata is malformed: unroll_reversal_share must lie in [0, 1], '
      + `got ${JSON.stringify(share)}`);
  }
  const deficit = desc.unroll_restore_deficit;
  if (deficit !== null && !RESTORE_DEFICITS.includes(deficit)) {
    throw new Error('model metadata is malformed: unroll_restore_deficit must be one of '
      + `${RESTORE_DEFICITS.join(', ')}, got ${JSON.stringify(deficit)}`);
  }
}

/** Number of members in the file described by `desc`: n_members, else 1 (a single network). */
function membersIn(desc) {
  return desc.n_members === null ? 1 : desc.n_members;
}

/** Segment length for unrolling when none is asked for: unroll_segment_fs, else tc, fs. */
function defaultSegmentFs(desc) {
  return desc.unroll_segment_fs === null ? desc.tc_fs : desc.unroll_segment_fs;
}

/** Fraction of a segment's total-energy deficit restoration puts back: the metadata's, else 1. */
function restoreFraction(desc) {
  return desc.unroll_restore_fraction ?? 1;
}

/** How restoration measures a segment's deficit: "end" or "mean" (the metadata's, else "end"). */
function restoreDeficit(desc) {
  return desc.unroll_restore_deficit ?? 'end';
}

/** Share of the round-trip defect added to each segment's start: the metadata's, else 0. */
function reversalShare(desc) {
  return desc.unroll_reversal_share ?? 0;
}

module.exports = {FORMAT_VERSION, defaultSegmentFs, membersIn, parseDescription, restoreDeficit,
  restoreFraction, reversalShare};
