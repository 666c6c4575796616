#pragma once
/// Fakes of the pipeline's seams, for unit tests only: a scripted Kafka (FakeKafka and the
/// FakeSource consumer it hands out), a database (FakeDatabase and its FakeSession sinks) that
/// implements the sluice_offsets compare-and-set as MariaDbSink does, and an in-memory spool.
/// Each can inject the faults the pipeline must survive: an outage, a read-only server, transient
/// errors, a transaction held open, a spool that cannot sync, a crash that loses staged events.
///
/// Threading: FakeKafka and FakeSource belong to the test's thread (which is also the pipeline's
/// ingest thread in these tests). FakeDatabase is shared by the writer threads and is guarded.
/// MemorySpool follows the Spool contract.
///
/// One header per seam: fake_kafka.h, fake_fleet.h, fake_database.h, memory_spool.h, and
/// sim_writers.h for a simulation's writers. This one includes them all.

#include "testing/fake_database.h"
#include "testing/fake_fleet.h"
#include "testing/fake_kafka.h"
#include "testing/memory_spool.h"
#include "testing/sim_writers.h"
