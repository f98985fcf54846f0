from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0009_discounts')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Client',
            index=Index(fields=['practice_id', 'last_name', 'first_name', 'id']),
        ),
    ]
