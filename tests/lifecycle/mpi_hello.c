/* mpi_hello.c - every rank reports its host; rank 0 checks an allreduce. */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv) {
        char host[MPI_MAX_PROCESSOR_NAME];
        int rank, size, len, sum = 0;

        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        MPI_Get_processor_name(host, &len);
        MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        printf("hello from rank %d of %d on %s\n", rank, size, host);
        if (rank == 0)
                printf("allreduce: sum of ranks %d (expected %d)\n", sum, size * (size - 1) / 2);
        MPI_Finalize();
        return sum == size * (size - 1) / 2 ? 0 : 1;
}
