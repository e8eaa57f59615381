"""A tiny CUDA program with no toolkit or framework: ctypes on the driver's libcuda.so.1.

Usage: cuda_alloc.py [MIB]  (default 512). Prints how many devices it sees, allocates
MIB on device 0, prints ``allocated MIB``, then holds the memory until SIGTERM.
Used by tools/gpu-check.sh.
"""

import ctypes
import os
import signal
import sys
import time


def check(result, what):
    if result != 0:
        print("%s failed: CUresult %d" % (what, result), flush=True)
        sys.exit(2)


def main():
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cuda = ctypes.CDLL("libcuda.so.1")
    check(cuda.cuInit(0), "cuInit")
    count = ctypes.c_int()
    check(cuda.cuDeviceGetCount(ctypes.byref(count)), "cuDeviceGetCount")
    print("visible=%s" % os.environ.get("CUDA_VISIBLE_DEVICES", ""), flush=True)
    print("devices=%d" % count.value, flush=True)
    device = ctypes.c_int()
    check(cuda.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
    context = ctypes.c_void_p()
    check(cuda.cuCtxCreate_v2(ctypes.byref(context), 0, device), "cuCtxCreate")
    pointer = ctypes.c_uint64()
    check(cuda.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(mib << 20)), "cuMemAlloc")
    # Touch it, so the memory is really committed.
    check(cuda.cuMemsetD8_v2(pointer, ctypes.c_ubyte(1), ctypes.c_size_t(mib << 20)), "cuMemsetD8")
    check(cuda.cuCtxSynchronize(), "cuCtxSynchronize")
    print("allocated %d MiB" % mib, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
