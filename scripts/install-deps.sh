#!/bin/sh
# Installs what kmseg needs from Debian 12 packages (as root).
#   scripts/install-deps.sh          build and run
#   scripts/install-deps.sh --test   also what the test suite needs
#   scripts/install-deps.sh --coverage   also gcovr, for scripts/coverage.sh
#   scripts/install-deps.sh --bench  also what the benchmarks read
# Does nothing (and needs no network) when everything is installed already.
set -eu

packages="build-essential pkg-config meson ninja-build libopencv-dev libinih-dev"
packages="$packages libnifti2-dev zlib1g-dev" # NIfTI volumes (zlib: .nii.gz masks)
packages="$packages libgdcm-dev" # DICOM series (GDCM 3)
if [ "${1:-}" = "--test" ]; then
    # check: unit tests; python3-opencv: the notebook equality test, run with
    # Debian's /usr/bin/python3, for which these modules are installed
    # parallel: the shard test runs GNU parallel as users would
    packages="$packages check python3 python3-opencv python3-numpy parallel"
    # the DICOM test: gdcmconv compresses series, pydicom writes them,
    # dcm2niix cross-checks their geometry
    packages="$packages libgdcm-tools python3-pydicom dcm2niix"
    # the fuzz targets: clang with libFuzzer (the runtime is only a
    # Recommends of clang, and recommends are not installed)
    packages="$packages clang libclang-rt-14-dev"
    # the Slurm test: README's job array on a one-node Slurm it starts
    # (slurmctld, slurmd, sbatch; munge for authentication)
    packages="$packages slurm-wlm munge"
    # the report test opens report.html in a headless browser
    packages="$packages chromium"
fi
if [ "${1:-}" = "--coverage" ]; then
    packages="$packages gcovr"
fi
if [ "${1:-}" = "--bench" ]; then
    # bench_colour: OpenCV's own sample photos (fruits, baboon, home,
    # starry_night) in /usr/share/doc/opencv-doc/examples/data
    packages="$packages opencv-doc"
    # the Python benchmarks (Debian's /usr/bin/python3): OpenCV, numpy,
    # pydicom writes bench_dicom's series, dcm2niix is its other side
    packages="$packages python3 python3-opencv python3-numpy python3-pydicom dcm2niix"
fi

missing=""
for p in $packages; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing (run as root, or install them)" >&2
    exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
