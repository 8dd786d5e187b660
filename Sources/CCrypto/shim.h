#ifndef ENFORCER_CCRYPTO_SHIM_H
#define ENFORCER_CCRYPTO_SHIM_H
#include <openssl/evp.h>
#endif
