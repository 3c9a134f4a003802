/* dtype.h - element types shared by the IR, profiles and backends. */
#ifndef CALPA_DTYPE_H
#define CALPA_DTYPE_H

#include <stddef.h>

typedef enum {
    DT_F32,
    DT_F16,
    DT_BF16,
    DT_I32,  /* token ids, labels, positions */
    DT_U8,   /* dropout masks */
    DT_COUNT
} DType;

/* Bytes per element. */
size_t dtype_bytes(DType dt);
/* "fp32", "fp16", "bf16", "int32", "uint8". */
const char *dtype_name(DType dt);
/* Parses the names above (also "float32", "float16", "bfloat16");
 * returns -1 when unknown. */
int dtype_parse(const char *s);

#endif
