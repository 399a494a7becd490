/* Names for tf_status values. */
#include "tf_status.h"

const char *tf_status_name(tf_status status)
{
    switch (status) {
    case TF_OK: return "TF_OK";
    case TF_ERR_NULL: return "TF_ERR_NULL";
    case TF_ERR_SHAPE: return "TF_ERR_SHAPE";
    case TF_ERR_RANGE: return "TF_ERR_RANGE";
    case TF_ERR_BUFFER: return "TF_ERR_BUFFER";
    case TF_ERR_TRUNCATED: return "TF_ERR_TRUNCATED";
    case TF_ERR_CORRUPT: return "TF_ERR_CORRUPT";
    case TF_ERR_UNSUPPORTED: return "TF_ERR_UNSUPPORTED";
    case TF_ERR_IO: return "TF_ERR_IO";
    }
    return "TF_ERR_UNKNOWN";
}
