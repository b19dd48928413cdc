#!/usr/bin/env python3
"""An independent reader of NVML's total-energy counter, to hold attnscope's GPU energy
figures against (the issue's "read by an independent process" check).

Usage: tools/nvml_energy.py [--index N] [--period-ms 100] > energy.csv
Prints "unix_s,energy_mj" every period until interrupted (SIGINT/SIGTERM). Uses only
ctypes and libnvidia-ml.so.1, so it runs where pynvml is not installed, and where
nvidia-smi does not offer the total_energy_consumption query field.
The energy of a window [t0, t1] is E(t1) - E(t0), interpolated linearly between rows.
"""
import argparse
import ctypes
import signal
import sys
import time


def nvml_call(lib, name, *args):
    status = getattr(lib, name)(*args)
    if status != 0:
        lib.nvmlErrorString.restype = ctypes.c_char_p
        raise RuntimeError(f"{name} failed: {lib.nvmlErrorString(status).decode()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, default=0, help="NVML device index")
    parser.add_argument("--period-ms", type=float, default=100.0)
    args = parser.parse_args()
    try:
        lib = ctypes.CDLL("libnvidia-ml.so.1")
        nvml_call(lib, "nvmlInit_v2")
        handle = ctypes.c_void_p()
        nvml_call(lib, "nvmlDeviceGetHandleByIndex_v2", args.index, ctypes.byref(handle))
    except (OSError, RuntimeError) as error:
        print(f"nvml_energy.py: error: {error}", file=sys.stderr)
        return 1
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(True))
    energy = ctypes.c_ulonglong()
    print("unix_s,energy_mj", flush=True)
    while not stop:
        nvml_call(lib, "nvmlDeviceGetTotalEnergyConsumption", handle, ctypes.byref(energy))
        print(f"{time.time():.3f},{energy.value}", flush=True)
        time.sleep(args.period_ms / 1000.0)
    lib.nvmlShutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
