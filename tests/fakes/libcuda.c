/* A stand-in for the driver's libcuda.so.1, for tools/gpu-check.sh without a GPU:
   one device per entry of CUDA_VISIBLE_DEVICES (2 when unset), host memory for device
   memory. Built by tests/test_gpu_check.py when a C compiler is there. */
#include <stdlib.h>
#include <string.h>

static int count(void) {
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    int n = 1;
    if (!v) return 2;
    if (!*v) return 0;
    for (; *v; v++) if (*v == ',') n++;
    return n;
}
int cuInit(unsigned flags) { (void)flags; return count() ? 0 : 100; }
int cuDeviceGetCount(int *n) { *n = count(); return 0; }
int cuDeviceGet(int *device, int ordinal) { *device = ordinal; return 0; }
int cuCtxCreate_v2(void **ctx, unsigned flags, int device) {
    (void)flags; (void)device; *ctx = (void *)1; return 0;
}
int cuMemAlloc_v2(unsigned long long *ptr, size_t size) {
    *ptr = (unsigned long long)(size_t)malloc(size); return *ptr ? 0 : 2;
}
int cuMemsetD8_v2(unsigned long long ptr, unsigned char value, size_t size) {
    memset((void *)(size_t)ptr, value, size); return 0;
}
int cuCtxSynchronize(void) { return 0; }
