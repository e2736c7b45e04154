/* The headers safeverbs-sys binds. */
#include <infiniband/verbs.h>
#ifdef SAFEVERBS_SYS_RDMACM
#include <rdma/rdma_cma.h>
#endif
