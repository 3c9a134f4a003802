/* dtype.c - element types (see dtype.h). */
#include "dtype.h"

#include <string.h>

static const struct {
    const char *name, *alias;
    size_t bytes;
} DT[DT_COUNT] = {
    [DT_F32] = {"fp32", "float32", 4}, [DT_F16] = {"fp16", "float16", 2},
    [DT_BF16] = {"bf16", "bfloat16", 2}, [DT_I32] = {"int32", "i32", 4},
    [DT_U8] = {"uint8", "u8", 1},
};

size_t dtype_bytes(DType dt) { return (unsigned)dt < DT_COUNT ? DT[dt].bytes : 0; }
const char *dtype_name(DType dt) { return (unsigned)dt < DT_COUNT ? DT[dt].name : "?"; }

int dtype_parse(const char *s)
{
    for (int i = 0; i < DT_COUNT; i++)
        if (!strcmp(s, DT[i].name) || !strcmp(s, DT[i].alias)) return i;
    return -1;
}
