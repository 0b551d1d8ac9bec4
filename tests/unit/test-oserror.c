/* test-oserror.c - the failure table: transient, capacity, permanent (doc/failures.md). */
#include <errno.h>
#include <string.h>

#include "cloud/oserror.h"
#include "test.h"

static enum os_failure classify(int error, long status, const char *message) {
        struct os_error e = { .status = status, .message = (char *) message };

        return os_failure_classify(error, &e);
}

static void test_transient(void) {
        CHECK_INT(classify(-ETIMEDOUT, 0, "Operation timed out"), OS_FAILURE_TRANSIENT);
        CHECK_INT(classify(-ECONNRESET, 0, "Empty reply from server"), OS_FAILURE_TRANSIENT);
        CHECK_INT(classify(-ECONNREFUSED, 0, NULL), OS_FAILURE_TRANSIENT);
        CHECK_INT(classify(-EHOSTUNREACH, 0, NULL), OS_FAILURE_TRANSIENT);
        CHECK_INT(classify(-EREMOTEIO, 503, "503 Service Unavailable"), OS_FAILURE_TRANSIENT);
        CHECK_INT(classify(-EREMOTEIO, 500, "computeFault: Unexpected API Error."), OS_FAILURE_TRANSIENT);
        CHECK_INT(classify(-EAGAIN, 429, "overLimit: This request was rate-limited."), OS_FAILURE_TRANSIENT);
        CHECK_INT(classify(-EIO, 0, "outcome unknown"), OS_FAILURE_TRANSIENT);
        CHECK_INT(classify(-EPROTO, 408, "Request Timeout"), OS_FAILURE_TRANSIENT);
        CHECK(os_failure_is_transient(-ETIMEDOUT, NULL));
        CHECK(!os_failure_is_transient(-EINVAL, NULL));
}

static void test_capacity(void) {
        CHECK_INT(classify(-EDQUOT, 403, "forbidden: Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"),
                  OS_FAILURE_CAPACITY);
        CHECK_INT(classify(-EDQUOT, 413, "overLimit: Quota exceeded for cores"), OS_FAILURE_CAPACITY);
        /* the words win over the errno: a 500 saying there is no host */
        CHECK_INT(classify(-EREMOTEIO, 500, "No valid host was found. "), OS_FAILURE_CAPACITY);
        CHECK_INT(os_fault_classify("No valid host was found. "), OS_FAILURE_CAPACITY);
        CHECK_INT(os_fault_classify("No valid host was found. There are not enough hosts available."),
                  OS_FAILURE_CAPACITY);
        CHECK_INT(os_fault_classify("Insufficient compute resources: Free memory 0.00 MB < requested 512 MB."),
                  OS_FAILURE_CAPACITY);
        CHECK_INT(os_fault_classify("Exceeded maximum number of retries. Exhausted all hosts available"),
                  OS_FAILURE_CAPACITY);
}

static void test_permanent(void) {
        CHECK_INT(classify(-EINVAL, 400, "badRequest: Invalid key_name provided."), OS_FAILURE_PERMANENT);
        CHECK_INT(classify(-EINVAL, 400, "badRequest: Can not find requested image"), OS_FAILURE_PERMANENT);
        CHECK_INT(classify(-ENOENT, 0, "no flavor named or with id 'nope'"), OS_FAILURE_PERMANENT);
        CHECK_INT(classify(-ENOTUNIQ, 0, "2 images are named 'x'"), OS_FAILURE_PERMANENT);
        CHECK_INT(classify(-EPERM, 403, "forbidden: Policy doesn't allow it"), OS_FAILURE_PERMANENT);
        CHECK_INT(classify(-EACCES, 401, "Unauthorized: The request you have made requires authentication."),
                  OS_FAILURE_PERMANENT);
        CHECK_INT(classify(-EKEYREJECTED, 0, "SSL certificate problem"), OS_FAILURE_PERMANENT);
        CHECK_INT(classify(-EBADMSG, 200, "not JSON"), OS_FAILURE_PERMANENT);
        CHECK_INT(os_fault_classify("Build of instance x aborted: Image y is unacceptable"), OS_FAILURE_PERMANENT);
        CHECK_INT(os_fault_classify(NULL), OS_FAILURE_PERMANENT);
        CHECK_STR(os_failure_to_string(OS_FAILURE_CAPACITY), "capacity");
}

int main(void) {
        RUN(test_transient);
        RUN(test_capacity);
        RUN(test_permanent);
        return test_done();
}
