from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.jobs import JobStatus
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0010_client_list_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Job',
            fields=[
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=60)),
                ('key', fields.CharField(null=True, unique=True, max_length=200)),
                ('payload', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('practice_id', fields.IntField(null=True)),
                ('run_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(default=JobStatus.PENDING, description='PENDING: pending\nRUNNING: running\nDONE: done\nFAILED: failed\nCANCELLED: cancelled', enum_type=JobStatus, max_length=10)),
                ('attempts', fields.IntField(default=0)),
                ('max_attempts', fields.IntField(default=6)),
                ('locked_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('locked_by', fields.CharField(default='', max_length=80)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.TextField(default='', unique=False)),
            ],
            options={'table': 'job', 'app': 'models', 'indexes': [Index(fields=['status', 'run_at'])], 'pk_attr': 'id'},
            bases=['Timestamped'],
        ),
    ]
