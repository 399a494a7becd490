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
    case TF_ERR_BAD_MAGIC: return "TF_ERR_BAD_MAGIC";
    case TF_ERR_UNSUPPORTED_VERSION: return "TF_ERR_UNSUPPORTED_VERSION";
    case TF_ERR_BAD_MESSAGE_TYPE: return "TF_ERR_BAD_MESSAGE_TYPE";
    case TF_ERR_OVERSIZED: return "TF_ERR_OVERSIZED";
    case TF_ERR_BAD_CRC: return "TF_ERR_BAD_CRC";
    case TF_ERR_MALFORMED: return "TF_ERR_MALFORMED";
    case TF_ERR_CHUNK: return "TF_ERR_CHUNK";
    }
    return "TF_ERR_UNKNOWN";
}
